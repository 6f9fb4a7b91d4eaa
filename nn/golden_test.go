package nn

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maas-ml/maas/nn/safetensors"
	"github.com/maas-ml/maas/tensor"
)

// Golden values from PyTorch 1.13 (testdata/gen_golden.py, computed in
// float64): the seed CNN's logits, loss, every parameter gradient and the
// parameters after one Adam step, and optimizer trajectories. Matched to
// 1e-4 relative: max|got − want| ≤ 1e-4 · max|want| per tensor.

const goldenTol = 1e-4

func seedCNN(input []int) ModelSpec {
	return ModelSpec{Input: input, Layers: []LayerSpec{
		{Type: "conv2d", Filters: 32, Kernel: 3, Padding: 1}, {Type: "relu"}, {Type: "maxpool2d", Kernel: 2},
		{Type: "conv2d", Filters: 64, Kernel: 3, Padding: 1}, {Type: "relu"}, {Type: "maxpool2d", Kernel: 2},
		{Type: "conv2d", Filters: 128, Kernel: 3, Padding: 1}, {Type: "relu"}, {Type: "maxpool2d", Kernel: 2},
		{Type: "flatten"},
		{Type: "dense", Units: 128}, {Type: "relu"},
		{Type: "dense", Units: 10},
	}}
}

// goldenParams are the tensors prefix+"param.NAME" of a golden file, as
// the parameters NAME.
func goldenParams(g *safetensors.File, prefix string) *safetensors.File {
	params := &safetensors.File{Tensors: map[string]safetensors.Tensor{}}
	for name, ts := range g.Tensors {
		if p, ok := strings.CutPrefix(name, prefix+"param."); ok {
			params.Tensors[p] = ts
		}
	}
	return params
}

func readGolden(t *testing.T, name string) *safetensors.File {
	t.Helper()
	f, err := safetensors.ReadFile(filepath.Join("..", "testdata", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func goldenF32(t *testing.T, f *safetensors.File, name string) []float32 {
	t.Helper()
	ts, ok := f.Tensors[name]
	if !ok {
		t.Fatalf("golden tensor %q missing", name)
	}
	v, err := ts.Float32()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// relErr returns max|got − want| / max|want|.
func relErr(got, want []float32) float64 {
	var d, m float64
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i])-float64(want[i])))
		m = math.Max(m, math.Abs(float64(want[i])))
	}
	if m == 0 {
		return d
	}
	return d / m
}

func TestGoldenSeedCNN(t *testing.T) {
	for _, c := range []struct {
		file  string
		input []int
	}{{"seed_cnn_28.safetensors", []int{1, 28, 28}}, {"seed_cnn_32.safetensors", []int{3, 32, 32}}} {
		for _, b := range []tensor.Backend{tensor.Reference, tensor.Default()} {
			t.Run(c.file+"/"+b.Name(), func(t *testing.T) {
				g := readGolden(t, c.file)
				m, err := Build(seedCNN(c.input), b)
				if err != nil {
					t.Fatal(err)
				}
				if err := m.SetWeights(goldenParams(g, "")); err != nil {
					t.Fatal(err)
				}
				x := goldenF32(t, g, "input")
				labels64, err := g.Tensors["labels"].Int64()
				if err != nil {
					t.Fatal(err)
				}
				n := len(labels64)
				labels := make([]int32, n)
				for i, v := range labels64 {
					labels[i] = int32(v)
				}
				lossFn := NewSoftmaxCrossEntropy(b, 10)
				logits := m.Forward(x, n, true)
				if e := relErr(logits, goldenF32(t, g, "logits")); e > goldenTol {
					t.Errorf("logits: relative error %.2g", e)
				}
				loss := lossFn.Forward(logits, labels, n)
				if e := relErr([]float32{loss}, goldenF32(t, g, "loss")); e > goldenTol {
					t.Errorf("loss %g: relative error %.2g", loss, e)
				}
				m.ZeroGrad()
				m.Backward(lossFn.Backward(), n)
				for _, v := range m.Views {
					if e := relErr(m.Grad(v.Name), goldenF32(t, g, "grad."+v.Name)); e > goldenTol {
						t.Errorf("grad of %s: relative error %.2g", v.Name, e)
					}
				}
				// Adam's first step moves each weight by lr·g/(|g| + ε): where |g|
				// is near ε = 1e-8 that amplifies float32 rounding in g by lr/ε,
				// so the step is taken from PyTorch's gradients (matched above)
				// to test the update itself at 1e-4.
				for _, v := range m.Views {
					copy(m.Grad(v.Name), goldenF32(t, g, "grad."+v.Name))
				}
				opt, err := NewOptimizer(OptimizerSpec{Type: "adam", LR: 1e-3}, len(m.Params))
				if err != nil {
					t.Fatal(err)
				}
				opt.Step(m.Params, m.Grads, 1e-3)
				for _, v := range m.Views {
					if e := relErr(m.Param(v.Name), goldenF32(t, g, "adam."+v.Name)); e > goldenTol {
						t.Errorf("%s after one Adam step: relative error %.2g", v.Name, e)
					}
				}
			})
		}
	}
}

func fp(v float64) *float64 { return &v }

func TestGoldenOptimizers(t *testing.T) {
	g := readGolden(t, "optim.safetensors")
	cases := map[string]OptimizerSpec{
		"sgd":           {Type: "sgd", LR: 0.1},
		"sgd_momentum":  {Type: "sgd", LR: 0.1, Momentum: 0.9, WeightDecay: fp(0.01)},
		"sgd_nesterov":  {Type: "sgd", LR: 0.1, Momentum: 0.9, Nesterov: true, WeightDecay: fp(0.001)},
		"sgd_dampening": {Type: "sgd", LR: 0.1, Momentum: 0.9, Dampening: 0.5},
		"adam":          {Type: "adam", LR: 1e-2},
		"adam_wd":       {Type: "adam", LR: 1e-2, WeightDecay: fp(0.01), Betas: []float64{0.8, 0.99}, Eps: 1e-6},
		"adamw":         {Type: "adamw", LR: 1e-2, WeightDecay: fp(0.01)},
	}
	for name, spec := range cases {
		t.Run(name, func(t *testing.T) {
			p := goldenF32(t, g, name+".p0")
			opt, err := NewOptimizer(spec, len(p))
			if err != nil {
				t.Fatal(err)
			}
			for step := 1; step <= 5; step++ {
				grad := goldenF32(t, g, name+".g"+string(rune('0'+step)))
				opt.Step(p, grad, spec.LR)
				if e := relErr(p, goldenF32(t, g, name+".p"+string(rune('0'+step)))); e > goldenTol {
					t.Fatalf("step %d: relative error %.2g", step, e)
				}
			}
		})
	}
	t.Run("clip", func(t *testing.T) {
		a, b := goldenF32(t, g, "clip.a"), goldenF32(t, g, "clip.b")
		all := append(append([]float32(nil), a...), b...)
		norm := ClipGradNorm(all, float64(goldenF32(t, g, "clip.max_norm")[0]))
		if e := relErr([]float32{float32(norm)}, goldenF32(t, g, "clip.total_norm")); e > goldenTol {
			t.Errorf("norm %g: relative error %.2g", norm, e)
		}
		want := append(goldenF32(t, g, "clip.a_out"), goldenF32(t, g, "clip.b_out")...)
		if e := relErr(all, want); e > goldenTol {
			t.Errorf("clipped gradients: relative error %.2g", e)
		}
	})
}
