package dataset

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// ShardLoader reads the shards of a sharded Dataset (see NewSharded).
type ShardLoader interface {
	// LoadShard returns shard i: the pixels of its samples back to back
	// (count*C*H*W bytes, CHW per sample) and their labels (count bytes).
	// It may be called from several goroutines, for different shards.
	LoadShard(i int) (pixels, labels []uint8, err error)
}

// shardSet holds the shards of a sharded Dataset, each loaded on first use.
type shardSet struct {
	size   int // samples per shard; the last may hold fewer
	load   ShardLoader
	loaded []atomic.Pointer[shard]
	// mu[i] serialises the loading of shard i, so that concurrent Batch
	// calls load it once.
	mu []sync.Mutex
}

// shard is one loaded shard.
type shard struct {
	pixels, labels []uint8
}

// NewSharded returns a Dataset of n samples of shape (c, h, w) stored in
// shards of shardSize samples each (the last holds the rest), which
// Batch loads through load the first time it needs one of their samples.
// Its Pixels and Labels stay nil. A shard that fails to load is tried
// again by the next Batch that needs it. Once its shards are loaded,
// Batch does not allocate.
func NewSharded(name string, n, c, h, w, classes, shardSize int, load ShardLoader) (*Dataset, error) {
	d := &Dataset{Name: name, N: n, C: c, H: h, W: w, Classes: classes}
	if err := d.checkShape(); err != nil {
		return nil, err
	}
	if classes < 1 || classes > 256 {
		return nil, fmt.Errorf("%w: sharded dataset %q has %d classes, want 1..256", ErrArgument, name, classes)
	}
	if shardSize <= 0 || load == nil {
		return nil, fmt.Errorf("%w: sharded dataset %q needs a positive shard size (got %d) and a loader", ErrArgument, name, shardSize)
	}
	count := (n + shardSize - 1) / shardSize
	d.shards = &shardSet{size: shardSize, load: load, loaded: make([]atomic.Pointer[shard], count), mu: make([]sync.Mutex, count)}
	return d, nil
}

// Shards returns the number of shards of a sharded Dataset, and 0 for an
// in-memory one.
func (d *Dataset) Shards() int {
	if d == nil || d.shards == nil {
		return 0
	}
	return len(d.shards.loaded)
}

// ensure loads every shard that holds a sample of idx (all in range).
func (d *Dataset) ensure(idx []int) error {
	s := d.shards
	for _, j := range idx {
		if i := j / s.size; s.loaded[i].Load() == nil {
			if err := d.loadShard(i); err != nil {
				return err
			}
		}
	}
	return nil
}

// loadShard loads shard i unless another goroutine did meanwhile, and
// checks its sizes and labels.
func (d *Dataset) loadShard(i int) error {
	s := d.shards
	s.mu[i].Lock()
	defer s.mu[i].Unlock()
	if s.loaded[i].Load() != nil {
		return nil
	}
	pixels, labels, err := s.load.LoadShard(i)
	if err != nil {
		return fmt.Errorf("dataset %q shard %d: %w", d.Name, i, err)
	}
	count := min(s.size, d.N-i*s.size)
	if len(pixels) != count*d.SampleSize() || len(labels) != count {
		return fmt.Errorf("%w: dataset %q shard %d holds %d pixel bytes and %d labels, want %d samples of %d bytes",
			ErrFormat, d.Name, i, len(pixels), len(labels), count, d.SampleSize())
	}
	for k, l := range labels {
		if int(l) >= d.Classes {
			return fmt.Errorf("%w: dataset %q shard %d: label %d at index %d, want < %d", ErrLabel, d.Name, i, l, k, d.Classes)
		}
	}
	s.loaded[i].Store(&shard{pixels: pixels, labels: labels})
	return nil
}

// batchSharded is Batch's conversion for a sharded Dataset whose shards
// holding idx are loaded.
func (d *Dataset) batchSharded(idx []int, norm Normalization, x []float32, y []int32) {
	s := d.shards
	ss, plane := d.SampleSize(), d.H*d.W
	var lut [256]float32
	for c := 0; c < d.C; c++ {
		norm.table(c, &lut)
		for i, j := range idx {
			sh := s.loaded[j/s.size].Load()
			off := (j%s.size)*ss + c*plane
			src := sh.pixels[off : off+plane]
			dst := x[i*ss+c*plane : i*ss+(c+1)*plane]
			dst = dst[:len(src)]
			for k, p := range src {
				dst[k] = lut[p]
			}
		}
	}
	for i, j := range idx {
		y[i] = int32(s.loaded[j/s.size].Load().labels[j%s.size])
	}
}
