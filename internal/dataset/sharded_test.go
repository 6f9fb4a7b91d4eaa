package dataset

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// memShards is an in-memory ShardLoader over a whole Dataset (a fake of
// the Object Store loader), counting its loads.
type memShards struct {
	d     *Dataset
	size  int
	loads []atomic.Int32
	fail  atomic.Bool // the next load fails
}

var _ ShardLoader = (*memShards)(nil)

func (m *memShards) LoadShard(i int) ([]uint8, []uint8, error) {
	if m.fail.Swap(false) {
		return nil, nil, errors.New("fetch failed")
	}
	m.loads[i].Add(1)
	lo, hi := i*m.size, min((i+1)*m.size, m.d.N)
	ss := m.d.SampleSize()
	return slices.Clone(m.d.Pixels[lo*ss : hi*ss]), slices.Clone(m.d.Labels[lo:hi]), nil
}

func sharded(t *testing.T, d *Dataset, size int) (*Dataset, *memShards) {
	t.Helper()
	m := &memShards{d: d, size: size, loads: make([]atomic.Int32, (d.N+size-1)/size)}
	s, err := NewSharded(d.Name, d.N, d.C, d.H, d.W, d.Classes, size, m)
	if err != nil {
		t.Fatal(err)
	}
	return s, m
}

// TestShardedBatchMatches: a sharded dataset gives the batches of the same
// dataset in memory, loading only the shards it needs, each once even
// under concurrent Batch calls, and then without allocating.
func TestShardedBatchMatches(t *testing.T) {
	d := Synthetic("syn", 103, 3, 4, 5, 7, 1)
	s, m := sharded(t, d, 10)
	if s.Shards() != 11 || d.Shards() != 0 {
		t.Fatalf("Shards() = %d, %d", s.Shards(), d.Shards())
	}
	norm := Normalization{Mean: []float32{0.1, 0.2, 0.3}, Std: []float32{0.5, 0.6, 0.7}}
	idx := []int{102, 0, 57, 55, 3}
	ss := d.SampleSize()
	want, got := make([]float32, len(idx)*ss), make([]float32, len(idx)*ss)
	wy, gy := make([]int32, len(idx)), make([]int32, len(idx))
	if err := d.Batch(idx, norm, want, wy); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			x, y := make([]float32, len(idx)*ss), make([]int32, len(idx))
			if err := s.Batch(idx, norm, x, y); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := s.Batch(idx, norm, got, gy); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) || !slices.Equal(gy, wy) {
		t.Fatal("the sharded batch differs from the in-memory one")
	}
	for i := range m.loads {
		wantLoads := int32(0)
		if i == 0 || i == 5 || i == 10 {
			wantLoads = 1
		}
		if n := m.loads[i].Load(); n != wantLoads {
			t.Errorf("shard %d loaded %d times, want %d", i, n, wantLoads)
		}
	}
	if a := testing.AllocsPerRun(20, func() { s.Batch(idx, norm, got, gy) }); a != 0 {
		t.Errorf("Batch on loaded shards allocates %v times", a)
	}
}

// TestShardedLoadErrors: a failed load is Batch's error and is retried by
// the next Batch; a shard of the wrong size or with a bad label is refused.
func TestShardedLoadErrors(t *testing.T) {
	d := Synthetic("syn", 20, 1, 2, 2, 3, 4)
	s, m := sharded(t, d, 8)
	x, y := make([]float32, 4*2), make([]int32, 2)
	m.fail.Store(true)
	if err := s.Batch([]int{1, 17}, Normalization{}, x, y); err == nil {
		t.Fatal("a failed load was not Batch's error")
	}
	if err := s.Batch([]int{1, 17}, Normalization{}, x, y); err != nil {
		t.Fatalf("the retry: %v", err)
	}
	bad := &badShards{labels: []uint8{0, 9}}
	b, err := NewSharded("bad", 2, 1, 1, 1, 3, 2, bad)
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, b.Batch([]int{0}, Normalization{}, x, y), ErrLabel, "label 9")
	bad.labels = []uint8{0}
	wantErr(t, b.Batch([]int{0}, Normalization{}, x, y), ErrFormat, "1 labels")
	if _, err := NewSharded("x", 3, 1, 1, 1, 10, 0, bad); !errors.Is(err, ErrArgument) {
		t.Errorf("shard size 0: %v", err)
	}
}

type badShards struct{ labels []uint8 }

func (b *badShards) LoadShard(int) ([]uint8, []uint8, error) {
	return make([]uint8, len(b.labels)), b.labels, nil
}
