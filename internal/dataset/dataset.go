package dataset

import "fmt"

// Dataset is an in-memory labelled image set. Pixels holds N samples of
// C*H*W bytes each (CHW order, 0..255); Labels holds N class indices, each
// below Classes.
type Dataset struct {
	Name    string // e.g. "mnist-train"
	N       int
	C, H, W int
	Classes int
	Pixels  []uint8
	Labels  []uint8
	// shards, when set, holds the samples instead of Pixels and Labels
	// (NewSharded).
	shards *shardSet
}

// SampleSize returns C*H*W, the number of bytes (and of floats in a batch)
// per sample.
func (d *Dataset) SampleSize() int {
	return d.C * d.H * d.W
}

// check reports whether d's fields are consistent enough for Batch to index
// into it without going out of bounds. It does not allocate on success.
func (d *Dataset) check() error {
	if err := d.checkShape(); err != nil || d.shards != nil {
		return err
	}
	ss := d.SampleSize()
	if len(d.Pixels) < d.N*ss {
		return fmt.Errorf("%w: dataset %q has %d pixel bytes, want N*C*H*W = %d",
			ErrArgument, d.Name, len(d.Pixels), d.N*ss)
	}
	if len(d.Labels) < d.N {
		return fmt.Errorf("%w: dataset %q has %d labels, want N = %d",
			ErrArgument, d.Name, len(d.Labels), d.N)
	}
	return nil
}

// checkShape reports a nil d or a shape that is not positive or whose
// N*C*H*W overflows int.
func (d *Dataset) checkShape() error {
	if d == nil {
		return fmt.Errorf("%w: nil *Dataset", ErrArgument)
	}
	if d.N < 0 || d.C <= 0 || d.H <= 0 || d.W <= 0 {
		return fmt.Errorf("%w: dataset %q has shape N=%d C=%d H=%d W=%d, want N >= 0 and C, H, W > 0",
			ErrArgument, d.Name, d.N, d.C, d.H, d.W)
	}
	ss := d.SampleSize()
	if ss/d.C/d.H != d.W || (d.N > 0 && ss > maxInt/d.N) {
		return fmt.Errorf("%w: dataset %q shape N=%d C=%d H=%d W=%d overflows int",
			ErrArgument, d.Name, d.N, d.C, d.H, d.W)
	}
	return nil
}

const maxInt = int(^uint(0) >> 1)
