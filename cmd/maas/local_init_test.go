package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/nn/safetensors"
)

// TestLocalMatchesTrainProcess: `maas local` with 2 workers and 2
// parameter servers, started from PyTorch's initial weights (--init) for
// 10 Adam steps (--max-steps), publishes the parameters `maas train` reaches
// from the same weights on the same batches, up to float summation order
// (max |Δθ| / max |θ| ≤ 1e-5). The spec and weights are the cnn_adam case
// of testdata/golden/traj.safetensors, whose single-process trajectory
// internal/train checks against PyTorch.
func TestLocalMatchesTrainProcess(t *testing.T) {
	if _, err := dataset.DefaultMNISTDir(); err != nil {
		t.Skip("real MNIST not in the module cache:", err)
	}
	g, err := safetensors.ReadFile(filepath.Join("..", "..", "testdata", "golden", "traj.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	spec, weights := filepath.Join(dir, "cnn.yaml"), filepath.Join(dir, "init.safetensors")
	if err := os.WriteFile(spec, []byte(g.Metadata["cnn_adam.spec"]), 0o644); err != nil {
		t.Fatal(err)
	}
	init := &safetensors.File{Tensors: map[string]safetensors.Tensor{}}
	for name, ts := range g.Tensors {
		if p, ok := strings.CutPrefix(name, g.Metadata["cnn_adam.init"]+".init."); ok {
			init.Tensors[p] = ts
		}
	}
	if err := safetensors.WriteFile(weights, init); err != nil {
		t.Fatal(err)
	}
	bin := buildMaas(t)
	single, cluster := filepath.Join(dir, "single"), filepath.Join(dir, "cluster")
	if b, err := exec.Command(bin, "train", "-f", spec, "--init", weights, "--max-steps", "10", "--threads", "2", "-o", single).CombinedOutput(); err != nil {
		t.Fatalf("maas train: %v\n%s", err, b)
	}
	p := freePorts(t, 3)
	cmd := exec.Command(bin, "local", "-f", spec, "--init", weights, "--max-steps", "10", "--workers", "2", "--servers", "2",
		"-o", cluster, "--data-dir", filepath.Join(dir, "data"), "--nats-port", fmt.Sprint(p[0]),
		"--api", fmt.Sprintf("127.0.0.1:%d", p[1]), "--raft", fmt.Sprintf("127.0.0.1:%d", p[2]), "--serve-addr", "")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("maas local: %v\n%s", err, b)
	}
	want, err := safetensors.ReadFile(filepath.Join(single, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := safetensors.ReadFile(filepath.Join(cluster, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	diff, _ := weightsDiff(t, want, got)
	moved, _ := weightsDiff(t, want, init)
	t.Logf("max |θ_local − θ_train| relative %.3g; the 10 steps moved θ by up to %.3g (relative)", diff, moved)
	if moved == 0 {
		t.Fatal("the parameters did not move from the initial weights")
	}
	if diff > 1e-5 {
		t.Fatalf("maas local's θ differs from maas train's: max relative difference %.3g", diff)
	}
}

// weightsDiff is max |w − v| / max |w| over every tensor of want, which
// got must hold with the same size, and the tensor where the difference is
// largest.
func weightsDiff(t *testing.T, want, got *safetensors.File) (float64, string) {
	t.Helper()
	var maxDiff, maxAbs float64
	worst := ""
	for name, wt := range want.Tensors {
		w, err1 := wt.Float32()
		v, err2 := got.Tensors[name].Float32()
		if err1 != nil || err2 != nil || len(w) != len(v) {
			t.Fatalf("%s: %v, %v (%d and %d values)", name, err1, err2, len(w), len(v))
		}
		for i := range w {
			if d := math.Abs(float64(w[i] - v[i])); d > maxDiff {
				maxDiff, worst = d, name
			}
			maxAbs = math.Max(maxAbs, math.Abs(float64(w[i])))
		}
	}
	if maxAbs == 0 {
		return maxDiff, worst
	}
	return maxDiff / maxAbs, worst
}

// TestLocalTrainsTextProcess: a text job (examples/charlm.yaml, the
// character-level LSTM) trains on the cluster: `maas local` with 2 workers
// holds after 20 steps the parameters `maas train` reaches (up to float
// summation order), and the published model carries the vocabulary.
func TestLocalTrainsTextProcess(t *testing.T) {
	bin := buildMaas(t)
	dir := t.TempDir()
	single, cluster := filepath.Join(dir, "single"), filepath.Join(dir, "cluster")
	train := exec.Command(bin, "train", "-f", "examples/charlm.yaml", "--max-steps", "20", "--threads", "2", "-o", single)
	train.Dir = "../.." // the spec's dataset.path is relative to the repository root
	if b, err := train.CombinedOutput(); err != nil {
		t.Fatalf("maas train: %v\n%s", err, b)
	}
	p := freePorts(t, 3)
	local := exec.Command(bin, "local", "-f", "examples/charlm.yaml", "--max-steps", "20", "--workers", "2",
		"-o", cluster, "--data-dir", filepath.Join(dir, "data"), "--nats-port", fmt.Sprint(p[0]),
		"--api", fmt.Sprintf("127.0.0.1:%d", p[1]), "--raft", fmt.Sprintf("127.0.0.1:%d", p[2]), "--serve-addr", "")
	local.Dir = "../.."
	if b, err := local.CombinedOutput(); err != nil {
		t.Fatalf("maas local: %v\n%s", err, b)
	}
	want, err := safetensors.ReadFile(filepath.Join(single, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := safetensors.ReadFile(filepath.Join(cluster, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Metadata["vocab"] == "" || got.Metadata["vocab"] != want.Metadata["vocab"] {
		t.Fatalf("published vocabulary %q, maas train's %q", got.Metadata["vocab"], want.Metadata["vocab"])
	}
	diff, worst := weightsDiff(t, want, got)
	t.Logf("max |θ_local − θ_train| relative %.3g (%s)", diff, worst)
	if diff > 1e-5 {
		t.Fatalf("maas local's θ differs from maas train's: max relative difference %.3g in %s", diff, worst)
	}
}
