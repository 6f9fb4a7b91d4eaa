package datastore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/natsserver"
	"github.com/maas-ml/maas/internal/wire"
)

// startJS starts an embedded NATS server (with JetStream unless noJS)
// and returns a JetStream client of it; both stop when the test ends.
func startJS(t *testing.T, noJS bool) jetstream.JetStream {
	t.Helper()
	c := natsserver.DefaultConfig()
	c.Port = -1
	if !noJS {
		c.StoreDir = t.TempDir()
	}
	s, err := natsserver.Start(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// cifarDir writes a tiny CIFAR-10 set in the binary batch format: train
// records per data_batch file (5 files) and test records in test_batch,
// pixels drawn from seed.
func cifarDir(t *testing.T, train, test int, seed byte) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, records int, salt byte) {
		var b []byte
		for r := range records {
			b = append(b, byte(r+int(salt))%10)
			for p := range 3 * 32 * 32 {
				b = append(b, byte(p*7+r*13)+salt+seed)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 5; i++ {
		write(fmt.Sprintf("data_batch_%d.bin", i), train, byte(i))
	}
	write("test_batch.bin", test, 0)
	return dir
}

// sameSamples checks that got holds exactly the first got.N samples of
// want, read through Batch.
func sameSamples(t *testing.T, got, want *dataset.Dataset) {
	t.Helper()
	if got.C != want.C || got.H != want.H || got.W != want.W || got.Classes != want.Classes {
		t.Fatalf("%s: shape %dx%dx%d/%d, want %dx%dx%d/%d", got.Name, got.C, got.H, got.W, got.Classes, want.C, want.H, want.W, want.Classes)
	}
	idx := make([]int, got.N)
	for i := range idx {
		idx[i] = got.N - 1 - i // backwards, across every shard
	}
	ss := got.SampleSize()
	gx, wx := make([]float32, got.N*ss), make([]float32, got.N*ss)
	gy, wy := make([]int32, got.N), make([]int32, got.N)
	if err := got.Batch(idx, dataset.Normalization{}, gx, gy); err != nil {
		t.Fatal(err)
	}
	if err := want.Batch(idx, dataset.Normalization{}, wx, wy); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gx, wx) || !slices.Equal(gy, wy) {
		t.Fatalf("%s: the samples read back differ from the original", got.Name)
	}
}

// TestPushMNISTReadBack pushes the first 1000 samples of each split of
// real MNIST and reads them back through lazily loaded shards.
func TestPushMNISTReadBack(t *testing.T) {
	mnist, err := dataset.DefaultMNISTDir()
	if err != nil {
		t.Skip("real MNIST not available:", err)
	}
	js, ctx := startJS(t, false), testCtx(t)
	var calls, last int
	m, err := Push(ctx, js, "mnist-1k", "mnist", mnist, PushOptions{ShardSamples: 300, Limit: 1000,
		Progress: func(done, total int) { calls, last = calls+1, done; _ = total }})
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != "mnist" || m.C != 1 || m.H != 28 || m.Classes != 10 || m.Train.N != 1000 || m.Test.N != 1000 ||
		len(m.Train.Shards) != 4 || m.Train.Shards[3].Count != 100 || calls != 8 || last != 2000 {
		t.Fatalf("manifest %+v; %d progress calls, last %d", m, calls, last)
	}
	r, err := Open(ctx, js, "mnist-1k")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []dataset.Split{dataset.Train, dataset.Test} {
		want, err := dataset.Open("mnist", "", s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Split(t.Context(), s, SplitOptions{CacheDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if got.N != 1000 || got.Shards() != 4 {
			t.Fatalf("%s: N %d in %d shards", s, got.N, got.Shards())
		}
		sameSamples(t, got, want)
	}
}

// TestPushCIFAR10ReadBack pushes a tiny CIFAR-10 set and reads both splits
// back, concurrently, from the bucket and then from the cache.
func TestPushCIFAR10ReadBack(t *testing.T) {
	js, ctx := startJS(t, false), testCtx(t)
	dir := cifarDir(t, 3, 7, 1)
	if _, err := Push(ctx, js, "tiny_cifar.v1", "CIFAR10", dir, PushOptions{ShardSamples: 4}); err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, js, "tiny_cifar.v1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != "cifar10" || r.Train.N != 15 || r.Test.N != 7 || r.Shards() != 6 || r.Bytes() != 22*3073+6*shardHeader {
		t.Fatalf("manifest %+v", r.Manifest)
	}
	cache := t.TempDir()
	for _, s := range []dataset.Split{dataset.Train, dataset.Test} {
		want, err := dataset.Open("cifar10", dir, s)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second from the cache
			got, err := r.Split(t.Context(), s, SplitOptions{CacheDir: cache})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					x, y := make([]float32, 3*got.SampleSize()), make([]int32, 3)
					if err := got.Batch([]int{0, got.N / 2, got.N - 1}, dataset.Normalization{}, x, y); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			sameSamples(t, got, want)
		}
	}
}

// countingStore is the bucket, counting the objects fetched.
type countingStore struct {
	objectGetter
	mu      sync.Mutex // guards fetched
	fetched []string
}

func (c *countingStore) GetBytes(ctx context.Context, name string, opts ...jetstream.GetObjectOpt) ([]byte, error) {
	c.mu.Lock()
	c.fetched = append(c.fetched, name)
	c.mu.Unlock()
	return c.objectGetter.GetBytes(ctx, name, opts...)
}

func (c *countingStore) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.fetched
	c.fetched = nil
	slices.Sort(f)
	return f
}

// pushed pushes a tiny CIFAR-10 set as "d" (15 train samples in shards of
// 4) and opens it with a counting store.
func pushed(t *testing.T) (jetstream.JetStream, *Remote, *countingStore) {
	t.Helper()
	js, ctx := startJS(t, false), testCtx(t)
	if _, err := Push(ctx, js, "d", "cifar10", cifarDir(t, 3, 2, 0), PushOptions{ShardSamples: 4}); err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, js, "d")
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{objectGetter: r.store}
	r.store = cs
	return js, r, cs
}

func batch(d *dataset.Dataset, idx ...int) error {
	return d.Batch(idx, dataset.Normalization{}, make([]float32, len(idx)*d.SampleSize()), make([]int32, len(idx)))
}

// TestOnlyTouchedShardsFetched: Batch fetches the shards of its samples
// once; another dataset over the same cache fetches none.
func TestOnlyTouchedShardsFetched(t *testing.T) {
	_, r, cs := pushed(t)
	cache := t.TempDir()
	d, err := r.Split(t.Context(), dataset.Train, SplitOptions{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if err := batch(d, 5, 13, 6); err != nil {
		t.Fatal(err)
	}
	if err := batch(d, 7, 12); err != nil {
		t.Fatal(err)
	}
	if got, want := cs.take(), []string{"d/train/00001", "d/train/00003"}; !slices.Equal(got, want) {
		t.Fatalf("fetched %v, want %v", got, want)
	}
	d2, _ := r.Split(t.Context(), dataset.Train, SplitOptions{CacheDir: cache})
	if err := batch(d2, 4, 14); err != nil {
		t.Fatal(err)
	}
	if got := cs.take(); len(got) != 0 {
		t.Fatalf("fetched %v; the cache holds them", got)
	}
	files, _ := filepath.Glob(filepath.Join(cache, "d", r.Digest[:16], "train", "*"))
	if len(files) != 2 {
		t.Errorf("cache holds %v, want the 2 fetched shards (and no temporary files)", files)
	}
}

// TestCorruptCacheRefetched: a cached shard whose bytes no longer match
// the manifest is fetched again and the cache file repaired.
func TestCorruptCacheRefetched(t *testing.T) {
	_, r, cs := pushed(t)
	cache := t.TempDir()
	d, _ := r.Split(t.Context(), dataset.Train, SplitOptions{CacheDir: cache})
	if err := batch(d, 0); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cache, "d", r.Digest[:16], "train", "00000")
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := slices.Clone(good)
	bad[len(bad)/2] ^= 0xff
	os.WriteFile(path, bad, 0o644)
	cs.take()
	d2, _ := r.Split(t.Context(), dataset.Train, SplitOptions{CacheDir: cache})
	if err := batch(d2, 1); err != nil {
		t.Fatal(err)
	}
	if got := cs.take(); !slices.Equal(got, []string{"d/train/00000"}) {
		t.Fatalf("fetched %v, want the corrupted shard again", got)
	}
	if now, _ := os.ReadFile(path); !slices.Equal(now, good) {
		t.Error("the corrupted cache file was not replaced")
	}
}

// TestBadObjectDigest: a shard object changed after the push is a clear
// ErrDigest error naming the object, and is not cached.
func TestBadObjectDigest(t *testing.T) {
	js, r, _ := pushed(t)
	ctx := testCtx(t)
	store, err := js.ObjectStore(ctx, wire.DataBucket)
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.GetBytes(ctx, "d/train/00002")
	if err != nil {
		t.Fatal(err)
	}
	b[shardHeader+10]++
	if _, err := store.PutBytes(ctx, "d/train/00002", b); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	d, _ := r.Split(t.Context(), dataset.Train, SplitOptions{CacheDir: cache})
	err = batch(d, 9)
	if !errors.Is(err, ErrDigest) || !strings.Contains(err.Error(), "d/train/00002") || !strings.Contains(err.Error(), "push dataset d again") {
		t.Fatalf("a changed shard: %v", err)
	}
	if files, _ := filepath.Glob(filepath.Join(cache, "d", "*", "train", "*")); len(files) != 0 {
		t.Errorf("a bad shard was cached: %v", files)
	}
	if err := batch(d, 1); err != nil {
		t.Errorf("the other shards still load: %v", err)
	}
}

// TestRePushReplaces: pushing a name again replaces its manifest, deletes
// the shards it no longer names, and gives a new digest, so caches of the
// old version are not used.
func TestRePushReplaces(t *testing.T) {
	js, ctx := startJS(t, false), testCtx(t)
	if _, err := Push(ctx, js, "d", "cifar10", cifarDir(t, 3, 2, 0), PushOptions{ShardSamples: 4}); err != nil {
		t.Fatal(err)
	}
	if _, err := Push(ctx, js, "other", "cifar10", cifarDir(t, 1, 1, 0), PushOptions{}); err != nil {
		t.Fatal(err)
	}
	old, _ := Open(ctx, js, "d")
	dir := cifarDir(t, 1, 2, 9)
	if _, err := Push(ctx, js, "d", "cifar10", dir, PushOptions{ShardSamples: 4}); err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, js, "d")
	if err != nil {
		t.Fatal(err)
	}
	if r.Digest == old.Digest || r.Train.N != 5 || len(r.Train.Shards) != 2 {
		t.Fatalf("after the re-push: digest %s (was %s), %d samples in %d shards", r.Digest, old.Digest, r.Train.N, len(r.Train.Shards))
	}
	store, _ := js.ObjectStore(ctx, wire.DataBucket)
	infos, _ := store.List(ctx)
	var names []string
	for _, i := range infos {
		names = append(names, i.Name)
	}
	slices.Sort(names)
	want := []string{"d/manifest.json", "d/test/00000", "d/train/00000", "d/train/00001", "other/manifest.json", "other/test/00000", "other/train/00000"}
	if !slices.Equal(names, want) {
		t.Fatalf("bucket holds %v, want %v", names, want)
	}
	want5, _ := dataset.Open("cifar10", dir, dataset.Train)
	got, _ := r.Split(t.Context(), dataset.Train, SplitOptions{CacheDir: t.TempDir()})
	sameSamples(t, got, want5)
	ms, err := List(ctx, js)
	if err != nil || len(ms) != 2 || ms[0].Name != "d" || ms[0].Train.N != 5 || ms[1].Name != "other" {
		t.Fatalf("List: %v, %v", ms, err)
	}
}

// TestRemoveAndMissing: a removed or never pushed dataset is ErrNotFound,
// and an incomplete one (no manifest) is invisible.
func TestRemoveAndMissing(t *testing.T) {
	js, ctx := startJS(t, false), testCtx(t)
	if _, err := Open(ctx, js, "d"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open before any push: %v", err)
	}
	if ms, err := List(ctx, js); err != nil || len(ms) != 0 {
		t.Fatalf("List before any push: %v, %v", ms, err)
	}
	if _, err := Push(ctx, js, "d", "cifar10", cifarDir(t, 1, 1, 0), PushOptions{}); err != nil {
		t.Fatal(err)
	}
	store, _ := js.ObjectStore(ctx, wire.DataBucket)
	store.PutBytes(ctx, "half/train/00000", []byte("an interrupted push"))
	if ms, err := List(ctx, js); err != nil || len(ms) != 1 || ms[0].Name != "d" {
		t.Fatalf("List: %v, %v; want only d", ms, err)
	}
	if _, err := Open(ctx, js, "half"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open of an incomplete dataset: %v", err)
	}
	if err := Remove(ctx, js, "d"); err != nil {
		t.Fatal(err)
	}
	if err := Remove(ctx, js, "half"); err != nil {
		t.Fatalf("Remove of an incomplete dataset: %v", err)
	}
	if _, err := Open(ctx, js, "d"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "maas data push") {
		t.Fatalf("Open after Remove: %v", err)
	}
	if err := Remove(ctx, js, "d"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Remove twice: %v", err)
	}
	if infos, err := store.List(ctx); !errors.Is(err, jetstream.ErrNoObjectsFound) {
		t.Fatalf("objects left: %v, %v", infos, err)
	}
}

func TestPushErrors(t *testing.T) {
	js, ctx := startJS(t, false), testCtx(t)
	for _, c := range []struct {
		name, kind, dir string
		want            error
		msg             string
	}{
		{"a/b", "cifar10", "", dataset.ErrName, "'/'"},
		{".hidden", "cifar10", "", dataset.ErrName, "starts with '.'"},
		{"", "cifar10", "", dataset.ErrName, "empty"},
		{"x", "imagenet", "", dataset.ErrUnknownKind, "imagenet"},
		{"x", "cifar10", "/nonexistent/cifar", dataset.ErrNotFound, "/nonexistent/cifar"},
	} {
		_, err := Push(ctx, js, c.name, c.kind, c.dir, PushOptions{})
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Push(%q, %q, %q): %v; want %v mentioning %s", c.name, c.kind, c.dir, err, c.want, c.msg)
		}
	}
	if err := dataset.ValidName(strings.Repeat("a", dataset.MaxNameLen)); err != nil {
		t.Error(err)
	}
	if err := dataset.ValidName(strings.Repeat("a", dataset.MaxNameLen+1)); !errors.Is(err, dataset.ErrName) {
		t.Errorf("a long name: %v", err)
	}
	noJS := startJS(t, true)
	if _, err := Push(ctx, noJS, "d", "cifar10", cifarDir(t, 1, 1, 0), PushOptions{}); !errors.Is(err, ErrNoJetStream) || !strings.Contains(err.Error(), "--store-dir") {
		t.Errorf("a server without JetStream: %v", err)
	}
}

// TestTransient: Open retries JetStream's "temporarily unavailable" (503)
// and a timeout, but not JetStream being off or a missing object.
func TestTransient(t *testing.T) {
	unavailable := &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("read m/manifest.json: %w", unavailable), true},
		{nats.ErrTimeout, true},
		{jetstream.ErrJetStreamNotEnabled, false},
		{jetstream.ErrJetStreamNotEnabledForAccount, false},
		{jetstream.ErrObjectNotFound, false},
		{&jetstream.APIError{Code: 404, ErrorCode: 10059}, false},
	} {
		if got := transient(c.err); got != c.want {
			t.Errorf("transient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
