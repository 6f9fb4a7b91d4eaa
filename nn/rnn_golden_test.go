package nn

import (
	"testing"

	"github.com/maas-ml/maas/tensor"
)

// Golden values for the recurrent layers from PyTorch 1.13
// (testdata/gen_golden_rnn.py, computed in float64), matched at goldenTol
// like TestGoldenSeedCNN: logits, loss, every gradient and one Adam step.
func TestGoldenRecurrent(t *testing.T) {
	cases := []struct {
		name  string
		spec  ModelSpec
		steps int // positions per sample the loss averages over
	}{
		{"lstm", ModelSpec{Input: []int{4, 5}, Layers: []LayerSpec{
			{Type: "lstm", Units: 7, NumLayers: 2}, {Type: "dense", Units: 3}}}, 1},
		{"gru", ModelSpec{Input: []int{4, 5}, Layers: []LayerSpec{
			{Type: "gru", Units: 7, NumLayers: 2}, {Type: "dense", Units: 3}}}, 1},
		{"embed_lstm", ModelSpec{Input: []int{5}, Layers: []LayerSpec{
			{Type: "embedding", Vocab: 11, Units: 6},
			{Type: "lstm", Units: 8, ReturnSequences: true},
			{Type: "dense", Units: 11}}}, 5},
	}
	g := readGolden(t, "rnn.safetensors")
	for _, c := range cases {
		for _, b := range []tensor.Backend{tensor.Reference, tensor.Default()} {
			t.Run(c.name+"/"+b.Name(), func(t *testing.T) {
				worst := 0.0
				check := func(what string, got, want []float32) {
					t.Helper()
					e := relErr(got, want)
					worst = max(worst, e)
					if e > goldenTol {
						t.Errorf("%s: relative error %.2g", what, e)
					}
				}
				defer func() { t.Logf("largest relative error %.2g", worst) }()
				m, err := Build(c.spec, b)
				if err != nil {
					t.Fatal(err)
				}
				prefix := c.name + "."
				if err := m.SetWeights(goldenParams(g, prefix)); err != nil {
					t.Fatal(err)
				}
				x := goldenF32(t, g, prefix+"input")
				labels64, err := g.Tensors[prefix+"labels"].Int64()
				if err != nil {
					t.Fatal(err)
				}
				rows := len(labels64) // n·steps positions
				n := rows / c.steps
				labels := make([]int32, rows)
				for i, v := range labels64 {
					labels[i] = int32(v)
				}
				out := m.OutShape()
				classes := out[len(out)-1]
				lossFn := NewSoftmaxCrossEntropy(b, classes)
				logits := m.Forward(x, n, true)
				check("logits", logits, goldenF32(t, g, prefix+"logits"))
				loss := lossFn.Forward(logits, labels, rows)
				check("loss", []float32{loss}, goldenF32(t, g, prefix+"loss"))
				m.ZeroGrad()
				m.Backward(lossFn.Backward(), n)
				for _, v := range m.Views {
					check("grad of "+v.Name, m.Grad(v.Name), goldenF32(t, g, prefix+"grad."+v.Name))
				}
				// One Adam step from PyTorch's gradients: see TestGoldenSeedCNN.
				for _, v := range m.Views {
					copy(m.Grad(v.Name), goldenF32(t, g, prefix+"grad."+v.Name))
				}
				opt, err := NewOptimizer(OptimizerSpec{Type: "adam", LR: 1e-3}, len(m.Params))
				if err != nil {
					t.Fatal(err)
				}
				opt.Step(m.Params, m.Grads, 1e-3)
				for _, v := range m.Views {
					check(v.Name+" after one Adam step", m.Param(v.Name), goldenF32(t, g, prefix+"adam."+v.Name))
				}
			})
		}
	}
}
