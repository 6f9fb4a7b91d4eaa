package coordinator_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/maas-ml/maas/coordinator"
	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/testcluster"
	"github.com/maas-ml/maas/internal/wire"
	"github.com/maas-ml/maas/nn/safetensors"
)

// startSingle starts a one-node coordinator on NATS url (cfg adjusted by
// adjust, when set), waits for it to lead and returns it with an API client
// and a context that ends with the test or after 10 s.
func startSingle(t *testing.T, url string, adjust func(*coordinator.Config)) (*coordinator.Node, *api.Client, context.Context) {
	t.Helper()
	cfg := coordinator.DefaultConfig()
	cfg.ID, cfg.RaftAddr, cfg.HTTPAddr, cfg.DataDir, cfg.Bootstrap = "c1", freeAddr(t), "127.0.0.1:0", t.TempDir(), true
	cfg.HeartbeatTimeout, cfg.ElectionTimeout = 300*time.Millisecond, 300*time.Millisecond
	if adjust != nil {
		adjust(&cfg)
	}
	n := openNode(t, cfg, url)
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	if err := n.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := api.NewClient("http://" + n.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	return n, c, ctx
}

// TestSubmitOutsideDataRoots: a coordinator with data roots refuses, with
// 400 naming dataset.path and the roots, a spec whose dataset lies
// elsewhere, and commits nothing; a spec inside a root, and the shipped
// MNIST, are taken.
func TestSubmitOutsideDataRoots(t *testing.T) {
	s := testcluster.StartNATS(t)
	root := t.TempDir()
	n, c, ctx := startSingle(t, s.ClientURL(), func(cfg *coordinator.Config) { cfg.DataRoots = []string{root} })
	spec := func(path string) string {
		return fmt.Sprintf(`name: roots
model:
  input: [1, 28, 28]
  layers: [{type: flatten}, {type: dense, units: 10}]
loss: softmax_cross_entropy
optimizer: {type: sgd, lr: 0.1}
dataset: {kind: mnist, path: %q}
batch_size: 32
epochs: 1
`, path)
	}
	var se *api.StatusError
	for _, path := range []string{root + "2", filepath.Join(root, "..", "elsewhere"), "/etc"} {
		_, err := c.Submit(ctx, api.SubmitRequest{Spec: spec(path)})
		if !errors.Is(err, api.ErrBadRequest) || !errors.As(err, &se) || !strings.Contains(err.Error(), "dataset.path") || !strings.Contains(err.Error(), root) {
			t.Errorf("dataset.path %s: %v, want 400 naming dataset.path and %s", path, err, root)
		}
	}
	if got := jobCount(n); got != 0 {
		t.Fatalf("%d jobs committed after refusals", got)
	}
	for _, path := range []string{filepath.Join(root, "mnist"), ""} {
		if _, err := c.Submit(ctx, api.SubmitRequest{Spec: spec(path)}); err != nil {
			t.Errorf("dataset.path %q: %v", path, err)
		}
	}
	if got := jobCount(n); got != 2 {
		t.Errorf("%d jobs committed, want 2", got)
	}
}

// TestSubmitInitWeights: weights that do not fit the spec's model are
// refused with 400 naming init_weights and the tensor, and commit nothing;
// fitting weights are stored in the checkpoint bucket under their digest
// and the job records them; max_steps caps the job's steps and a negative
// one is refused.
func TestSubmitInitWeights(t *testing.T) {
	s := testcluster.StartNATS(t)
	n, c, ctx := startSingle(t, s.ClientURL(), nil)
	const spec = `name: init
model:
  input: [1, 28, 28]
  layers: [{type: flatten}, {type: dense, units: 10}]
loss: softmax_cross_entropy
optimizer: {type: sgd, lr: 0.1}
dataset: {kind: mnist}
batch_size: 32
epochs: 1
`
	encode := func(tensors map[string]safetensors.Tensor) []byte {
		var b bytes.Buffer
		if err := safetensors.Encode(&b, &safetensors.File{Tensors: tensors}); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	w := make([]float32, 10*784)
	for i := range w {
		w[i] = float32(i%7) * 0.01
	}
	good := encode(map[string]safetensors.Tensor{"fc1.weight": safetensors.F32([]int{10, 784}, w), "fc1.bias": safetensors.F32([]int{10}, make([]float32, 10))})
	for _, c2 := range []struct {
		name    string
		weights []byte
		msg     string
	}{
		{"not safetensors", []byte("name: x\n"), "init_weights"},
		{"tensor missing", encode(map[string]safetensors.Tensor{"fc1.weight": safetensors.F32([]int{10, 784}, w)}), `"fc1.bias"`},
		{"wrong shape", encode(map[string]safetensors.Tensor{"fc1.weight": safetensors.F32([]int{784, 10}, w), "fc1.bias": safetensors.F32([]int{10}, make([]float32, 10))}), `"fc1.weight"`},
	} {
		_, err := c.Submit(ctx, api.SubmitRequest{Spec: spec, InitWeights: c2.weights})
		if !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "init_weights") || !strings.Contains(err.Error(), c2.msg) {
			t.Errorf("%s: %v, want 400 naming init_weights and %s", c2.name, err, c2.msg)
		}
	}
	if _, err := c.Submit(ctx, api.SubmitRequest{Spec: spec, MaxSteps: -1}); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "max_steps") {
		t.Errorf("max_steps -1: %v, want 400 naming max_steps", err)
	}
	if got := jobCount(n); got != 0 {
		t.Fatalf("%d jobs committed after refusals", got)
	}
	sub, err := c.Submit(ctx, api.SubmitRequest{Spec: spec, InitWeights: good, MaxSteps: 7})
	if err != nil {
		t.Fatal(err)
	}
	var j coordinator.JobRecord
	var ok bool
	n.FSM().Read(func(st *coordinator.State) {
		if p := st.Jobs[sub.ID]; p != nil {
			j, ok = *p, true
		}
	})
	sum := sha256.Sum256(good)
	if !ok || j.Init != wire.InitObject(hex.EncodeToString(sum[:])) || j.TotalSteps != 7 {
		t.Fatalf("job %+v, want init %s and 7 steps", j, wire.InitObject(hex.EncodeToString(sum[:])))
	}
	nc := testcluster.Connect(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := js.ObjectStore(ctx, wire.CheckpointBucket)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := store.GetBytes(ctx, j.Init)
	if err != nil || !bytes.Equal(stored, good) {
		t.Fatalf("stored initial weights: %d bytes, %v; want the %d submitted", len(stored), err, len(good))
	}
}
