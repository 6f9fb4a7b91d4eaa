package gputrain

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/tensor"
	"github.com/maas-ml/maas/tensor/cuda"
)

// The device-resident Trainer on the host emulation (cuda.OpenHost: the
// kernels compiled for the CPU, the plain GEMM kernel in cuBLAS's place,
// graphs recorded and replayed) against package nn on tensor.Reference:
// the same spec, initial weights and batches give the same loss, accuracy,
// gradients and, after the optimizer's steps, parameters.

// openHost returns a Backend on the host emulation, or skips t without
// clang-14 (CI installs it and fails instead; see .ci/run). Its Close at
// the end of t checks that nothing was left allocated.
func openHost(t *testing.T) *cuda.Backend {
	t.Helper()
	b, err := cuda.OpenHost()
	if errors.Is(err, cuda.ErrNoClang) {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, b)
	return b
}

// openGPUOrSkip opens cuda:0, or skips t with the loader's error when the
// machine has no NVIDIA driver, GPU or cuBLAS.
func openGPUOrSkip(t *testing.T) *cuda.Backend {
	t.Helper()
	b, err := cuda.Open("cuda", cuda.Options{})
	if errors.Is(err, cuda.ErrNoDriver) || errors.Is(err, cuda.ErrNoDevice) || errors.Is(err, cuda.ErrNoCUBLAS) {
		t.Skip(err.Error()) // "cuda: cannot load ..."
	}
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, b)
	t.Logf("running on %s", b.Device())
	return b
}

func closeAtEnd(t *testing.T, b *cuda.Backend) {
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
}

func randFloats(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// trainerCase is a model, its batch and its optimizer.
type trainerCase struct {
	name  string
	spec  nn.ModelSpec
	batch int
	opt   nn.OptimizerSpec
}

// cnnSpec is the seed CNN's shape: conv-relu-pool blocks of the given
// filters, then dense(hidden), relu, dense(10).
func cnnSpec(input []int, hidden int, filters ...int) nn.ModelSpec {
	s := nn.ModelSpec{Input: input}
	for _, f := range filters {
		s.Layers = append(s.Layers,
			nn.LayerSpec{Type: "conv2d", Filters: f, Kernel: 3, Padding: 1},
			nn.LayerSpec{Type: "relu"},
			nn.LayerSpec{Type: "maxpool2d", Kernel: 2})
	}
	s.Layers = append(s.Layers,
		nn.LayerSpec{Type: "flatten"},
		nn.LayerSpec{Type: "dense", Units: hidden},
		nn.LayerSpec{Type: "relu"},
		nn.LayerSpec{Type: "dense", Units: 10})
	return s
}

func trainerCases() []trainerCase {
	wd := 0.01
	return []trainerCase{
		// The seed CNN's layers with fewer channels on 1x12x12.
		{"cnn-12x12", cnnSpec([]int{1, 12, 12}, 16, 4, 8), 3, nn.OptimizerSpec{Type: "adam", LR: 0.01}},
		// The seed CNN itself (examples/mnist-cnn.yaml) at batch 2.
		{"seed-cnn-28x28", cnnSpec([]int{1, 28, 28}, 128, 32, 64, 128), 2, nn.OptimizerSpec{Type: "adam", LR: 0.002}},
		// A strided convolution without a ReLU after it, a ReLU after a dense layer.
		{"conv-stride", nn.ModelSpec{Input: []int{2, 9, 9}, Layers: []nn.LayerSpec{
			{Type: "conv2d", Filters: 3, Kernel: 3, Stride: 2},
			{Type: "maxpool2d", Kernel: 2, Stride: 1},
			{Type: "flatten"}, {Type: "dense", Units: 7}, {Type: "relu"}, {Type: "dense", Units: 5},
		}}, 4, nn.OptimizerSpec{Type: "sgd", LR: 0.05, Momentum: 0.9, WeightDecay: &wd}},
		// Two stacked LSTM layers, the last h into a dense head.
		{"lstm", nn.ModelSpec{Input: []int{5, 3}, Layers: []nn.LayerSpec{
			{Type: "lstm", Units: 6, NumLayers: 2}, {Type: "dense", Units: 8}, {Type: "relu"}, {Type: "dense", Units: 4},
		}}, 3, nn.OptimizerSpec{Type: "sgd", LR: 0.1, Momentum: 0.9, Nesterov: true}},
		// Two stacked GRU layers with every step's h, a label per step,
		// after a dense layer on the sequence; gradients clipped.
		{"gru", nn.ModelSpec{Input: []int{4, 3}, Layers: []nn.LayerSpec{
			{Type: "dense", Units: 5}, {Type: "gru", Units: 5, NumLayers: 2, ReturnSequences: true}, {Type: "dense", Units: 4},
		}}, 3, nn.OptimizerSpec{Type: "adamw", LR: 0.01, ClipNorm: 0.05}},
		// One LSTM layer on the first layer: no input gradient at all.
		{"lstm-seq", nn.ModelSpec{Input: []int{3, 2}, Layers: []nn.LayerSpec{
			{Type: "lstm", Units: 4, ReturnSequences: true}, {Type: "flatten"}, {Type: "dense", Units: 3},
		}}, 2, nn.OptimizerSpec{Type: "sgd", LR: 0.1}},
	}
}

// closeEach reports how far got is from want in each parameter tensor,
// relative to the tensor's largest magnitude in want.
func closeEach(t *testing.T, what string, views []nn.ParamView, got, want []float32, tol float64) {
	t.Helper()
	for _, v := range views {
		g, w := got[v.Offset:v.Offset+v.Size], want[v.Offset:v.Offset+v.Size]
		scale := 0.0
		for _, x := range w {
			scale = math.Max(scale, math.Abs(float64(x)))
		}
		scale = math.Max(scale, 1e-30)
		for i := range w {
			if d := math.Abs(float64(g[i]) - float64(w[i])); !(d <= tol*scale) {
				t.Fatalf("%s %s[%d] = %g, want %g (max |%s| %g)", what, v.Name, i, g[i], w[i], v.Name, scale)
			}
		}
	}
}

func TestTrainerMatchesNN(t *testing.T) {
	for _, c := range trainerCases() {
		t.Run(c.name, func(t *testing.T) {
			checkTrainer(t, openHost(t), c)
		})
	}
}

// TestGPUTrainer is TestTrainerMatchesNN on the GPU (cuBLAS in full fp32).
func TestGPUTrainer(t *testing.T) {
	b := openGPUOrSkip(t)
	for _, c := range trainerCases() {
		t.Run(c.name, func(t *testing.T) { checkTrainer(t, b, c) })
	}
}

// checkTrainer runs c on a Trainer on b and on nn over tensor.Reference,
// step by step. On the host emulation it checks its allocation and graph
// counters too.
func checkTrainer(t *testing.T, b *cuda.Backend, c trainerCase) {
	_, counted := b.HostCounts()
	counts := func() (allocs, hostAllocs, captures, replays int) {
		n, _ := b.HostCounts()
		return n.Allocs, n.HostAllocs, n.Captures, n.Replays
	}
	m, err := nn.Build(c.spec, tensor.Reference)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(7)
	opt, err := nn.NewOptimizer(c.opt, len(m.Params))
	if err != nil {
		t.Fatal(err)
	}
	out := m.OutShape()
	classes, rowsPer := out[len(out)-1], tensor.NumElements(out[:len(out)-1])
	loss := nn.NewSoftmaxCrossEntropy(tensor.Reference, classes)

	allocs0, host0, captures0, replays0 := counts()
	tr, err := NewTrainer(b, c.spec, c.batch, &c.opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := tr.SetParams(m.Params); err != nil {
		t.Fatal(err)
	}
	allocs1, host1, _, _ := counts()
	if counted && (allocs1-allocs0 != 1 || host1-host0 != 1) {
		t.Errorf("NewTrainer made %d device and %d pinned allocations, want 1 and 1", allocs1-allocs0, host1-host0)
	}

	r := rand.New(rand.NewPCG(11, 12))
	in := tensor.NumElements(m.InShape())
	grads, params := make([]float32, len(m.Params)), make([]float32, len(m.Params))
	// Full batches (uncaptured, then captured, then replayed), a
	// short last batch (uncaptured), and a full batch again.
	sizes := []int{c.batch, c.batch, c.batch, max(c.batch-1, 1), c.batch}
	for step, n := range sizes {
		x := randFloats(r, n*in)
		y := make([]int32, n*rowsPer)
		for i := range y {
			y[i] = int32(r.IntN(classes))
		}
		rows := n * rowsPer
		lr := c.opt.LR * (1 - 0.1*float64(step)) // a schedule's input

		m.ZeroGrad()
		wantLoss := loss.Forward(m.Forward(x, n, true), y, rows)
		m.Backward(loss.Backward(), n)
		wantCorrect := loss.Correct()

		gotLoss, gotCorrect, err := tr.Step(x, y, n)
		if err != nil {
			t.Fatal(err)
		}
		where := fmt.Sprintf("step %d (n=%d)", step+1, n)
		if d := math.Abs(float64(gotLoss - wantLoss)); d > 1e-4*math.Abs(float64(wantLoss)) {
			t.Fatalf("%s: loss %g, want %g", where, gotLoss, wantLoss)
		}
		if gotCorrect != wantCorrect {
			t.Errorf("%s: %d of %d rows right, want %d", where, gotCorrect, rows, wantCorrect)
		}
		if err := tr.Grads(grads); err != nil {
			t.Fatal(err)
		}
		closeEach(t, where+" gradient", m.Views, grads, m.Grads, 1e-4)

		if c.opt.ClipNorm > 0 {
			nn.ClipGradNorm(m.Grads, c.opt.ClipNorm)
		}
		opt.Step(m.Params, m.Grads, lr)
		if err := tr.Update(lr); err != nil {
			t.Fatal(err)
		}
		if err := tr.Params(params); err != nil {
			t.Fatal(err)
		}
		closeEach(t, where+" parameter", m.Views, params, m.Params, 1e-4)
	}
	allocs2, host2, captures, replays := counts()
	if allocs2 != allocs1 || host2 != host1 {
		t.Errorf("the steps made %d device and %d pinned allocations, want none", allocs2-allocs1, host2-host1)
	}
	// Captured at the second full batch, replayed then and twice more.
	if counted && (captures-captures0 != 1 || replays-replays0 != 3) {
		t.Errorf("%d captures and %d replays, want 1 and 3", captures-captures0, replays-replays0)
	}
	if err := tr.GraphError(); err != nil {
		t.Errorf("steps not captured: %v", err)
	}
}

// TestTrainerGradientsOnly is the worker's use: no optimizer, θ set before
// every step, gradients fetched after it.
func TestTrainerGradientsOnly(t *testing.T) {
	b := openHost(t)
	spec := cnnSpec([]int{1, 8, 8}, 6, 3)
	m, err := nn.Build(spec, tensor.Reference)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTrainer(b, spec, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	loss := nn.NewSoftmaxCrossEntropy(tensor.Reference, 10)
	r := rand.New(rand.NewPCG(13, 14))
	grads := make([]float32, len(m.Params))
	for step := range 3 {
		m.Init(uint64(step + 1)) // new θ every step, as pulled from the servers
		if err := tr.SetParams(m.Params); err != nil {
			t.Fatal(err)
		}
		x, y := randFloats(r, 4*64), []int32{1, 2, 3, 4}
		m.ZeroGrad()
		want := loss.Forward(m.Forward(x, 4, true), y, 4)
		m.Backward(loss.Backward(), 4)
		got, _, err := tr.Step(x, y, 4)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(float64(got-want)) > 1e-4*math.Abs(float64(want)) {
			t.Fatalf("step %d: loss %g, want %g", step, got, want)
		}
		if err := tr.Grads(grads); err != nil {
			t.Fatal(err)
		}
		closeEach(t, fmt.Sprintf("step %d gradient", step), m.Views, grads, m.Grads, 1e-4)
	}
	if err := tr.Update(0.1); err == nil {
		t.Error("Update on a trainer without an optimizer succeeded")
	}
}

func TestTrainerErrors(t *testing.T) {
	b := openHost(t)
	spec := nn.ModelSpec{Input: []int{4}, Layers: []nn.LayerSpec{{Type: "dense", Units: 4}, {Type: "dropout", Rate: 0.5}, {Type: "dense", Units: 2}}}
	_, err := NewTrainer(b, spec, 2, nil)
	if !errors.Is(err, ErrUnsupportedLayer) || !strings.Contains(err.Error(), "model.layers[1] is dropout") {
		t.Errorf("a dropout layer: %v, want ErrUnsupportedLayer naming it", err)
	}
	spec.Layers = []nn.LayerSpec{{Type: "dense", Units: 2}}
	tr, err := NewTrainer(b, spec, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, _, err := tr.Step(make([]float32, 12), make([]int32, 3), 3); err == nil {
		t.Error("a step over the trainer's batch succeeded")
	}
	if err := tr.SetParams(make([]float32, 3)); err == nil {
		t.Error("SetParams of the wrong length succeeded")
	}
}
