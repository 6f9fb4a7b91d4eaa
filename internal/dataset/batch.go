package dataset

import "fmt"

// Batch writes the samples at idx into x, normalised with norm, as
// len(idx) samples of SampleSize floats (NCHW), and their labels into y.
// x must hold at least len(idx)*SampleSize() floats and y at least len(idx)
// values; anything beyond is left untouched. It returns an error, and
// writes nothing, on an index out of range (ErrIndex), short buffers
// (ErrShortBuffer), an invalid norm (ErrNormalization) or an inconsistent
// Dataset (ErrArgument). Batch does not allocate unless it fails, and is
// safe for concurrent use on the same Dataset.
func (d *Dataset) Batch(idx []int, norm Normalization, x []float32, y []int32) error {
	if err := d.check(); err != nil {
		return err
	}
	if err := norm.Validate(d.C); err != nil {
		return err
	}
	ss := d.SampleSize()
	if len(idx) > 0 && ss > maxInt/len(idx) {
		return fmt.Errorf("%w: batch of %d samples of %d floats overflows int", ErrShortBuffer, len(idx), ss)
	}
	if need := len(idx) * ss; len(x) < need {
		return fmt.Errorf("%w: x has %d floats, want %d (%d samples x %d)", ErrShortBuffer, len(x), need, len(idx), ss)
	}
	if len(y) < len(idx) {
		return fmt.Errorf("%w: y has %d labels, want %d", ErrShortBuffer, len(y), len(idx))
	}
	for i, j := range idx {
		if j < 0 || j >= d.N {
			return fmt.Errorf("%w: idx[%d] = %d, want 0 <= idx < %d (dataset %q)", ErrIndex, i, j, d.N, d.Name)
		}
	}
	if d.shards != nil {
		if err := d.ensure(idx); err != nil {
			return err
		}
		d.batchSharded(idx, norm, x, y)
		return nil
	}
	plane := d.H * d.W
	var lut [256]float32
	for c := 0; c < d.C; c++ {
		norm.table(c, &lut)
		for i, j := range idx {
			src := d.Pixels[j*ss+c*plane : j*ss+(c+1)*plane]
			dst := x[i*ss+c*plane : i*ss+(c+1)*plane]
			dst = dst[:len(src)]
			for k, p := range src {
				dst[k] = lut[p]
			}
		}
	}
	for i, j := range idx {
		y[i] = int32(d.Labels[j])
	}
	return nil
}
