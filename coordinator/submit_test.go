package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maas-ml/maas/coordinator"
	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/cluster"
)

// TestSubmitOutsideDataRoots: a coordinator with data roots refuses, with
// 400 naming dataset.path and the roots, a spec whose dataset lies
// elsewhere, and commits nothing; a spec inside a root, and the shipped
// MNIST, are taken.
func TestSubmitOutsideDataRoots(t *testing.T) {
	s := cluster.StartNATS(t)
	root := t.TempDir()
	cfg := coordinator.DefaultConfig()
	cfg.ID, cfg.RaftAddr, cfg.HTTPAddr, cfg.DataDir, cfg.Bootstrap = "c1", freeAddr(t), "127.0.0.1:0", t.TempDir(), true
	cfg.HeartbeatTimeout, cfg.ElectionTimeout = 300*time.Millisecond, 300*time.Millisecond
	cfg.DataRoots = []string{root}
	n := openNode(t, cfg, s.ClientURL())
	defer n.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := n.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := api.NewClient("http://" + n.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
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
