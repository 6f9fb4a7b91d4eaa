package nn

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/maas-ml/maas/nn/safetensors"
	"github.com/maas-ml/maas/tensor"
)

// goldenExplainer builds an explainer of spec with the weights under
// prefix+"param." in the golden file g.
func goldenExplainer(t *testing.T, spec ModelSpec, b tensor.Backend, g *safetensors.File, prefix string) *Explainer {
	t.Helper()
	m, err := Build(spec, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetWeights(goldenParams(g, prefix)); err != nil {
		t.Fatal(err)
	}
	e, err := NewExplainer(spec, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetParams(m.Params); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestGoldenExplanations: integrated gradients, saliency and Grad-CAM of
// the seed CNN (conv2 and conv3) and integrated gradients and saliency of
// a 2-layer LSTM (per time step and feature) match PyTorch's
// (testdata/gen_golden_explain.py, float64) within 1e-4 relative, on the
// reference and the default backend; integrated gradients' completeness
// gap shrinks as the points grow.
func TestGoldenExplanations(t *testing.T) {
	g := readGolden(t, "explain.safetensors")
	cnn, rnn := readGolden(t, "seed_cnn_28.safetensors"), readGolden(t, "rnn.safetensors")
	lstm := ModelSpec{Input: []int{4, 5}, Layers: []LayerSpec{{Type: "lstm", Units: 7, NumLayers: 2}, {Type: "dense", Units: 3}}}
	for _, b := range []tensor.Backend{tensor.Reference, tensor.Default()} {
		t.Run(b.Name(), func(t *testing.T) {
			worst := 0.0
			check := func(what string, got []float32, want string) {
				t.Helper()
				e := relErr(got, goldenF32(t, g, want))
				worst = math.Max(worst, e)
				if e > goldenTol {
					t.Errorf("%s: relative error %.2g against %s", what, e, want)
				}
			}
			cases := []struct {
				name string
				e    *Explainer
				x    []float32
				size int
				cam  bool
			}{
				{"cnn", goldenExplainer(t, seedCNN([]int{1, 28, 28}), b, cnn, ""), goldenF32(t, cnn, "input"), 784, true},
				{"lstm", goldenExplainer(t, lstm, b, rnn, "lstm."), goldenF32(t, rnn, "lstm.input"), 20, false},
			}
			for _, c := range cases {
				for s := range 2 {
					x := c.x[s*c.size : (s+1)*c.size]
					p := c.name + ".s" + string(rune('0'+s)) + "."
					ig, err := c.e.Explain(x, ExplainOptions{Method: IntegratedGradients, Class: -1})
					if err != nil {
						t.Fatal(err)
					}
					cls, _ := g.Tensors[p+"ig.class"].Int64()
					if ig.Class != int(cls[0]) {
						t.Errorf("%s: integrated gradients of class %d, want the predicted %d", p, ig.Class, cls[0])
					}
					check(p+"ig", ig.Attributions, p+"ig.attr")
					check(p+"ig f(x), f(b)", []float32{float32(ig.Target), float32(ig.BaselineTarget)}, p+"ig.f")
					// The gap shrinks with more points (this untrained model's
					// f(x) − f(b) is small, so its relative gap is larger than a
					// trained one's: cmd/maas's TestExplainProcess checks ≤ 1%
					// on MNIST digits).
					if b != tensor.Reference { // the naive kernels take a minute for 400 points
						coarse, err := c.e.Explain(x, ExplainOptions{Method: IntegratedGradients, Class: ig.Class, Steps: 10})
						if err != nil {
							t.Fatal(err)
						}
						fine, err := c.e.Explain(x, ExplainOptions{Method: IntegratedGradients, Class: ig.Class, Steps: 400})
						if err != nil {
							t.Fatal(err)
						}
						if fine.CompletenessGap >= coarse.CompletenessGap && coarse.CompletenessGap > 1e-6*math.Abs(ig.Target-ig.BaselineTarget) {
							t.Errorf("%s: completeness gap %.3g at 400 points, %.3g at 10: it does not shrink", p, fine.CompletenessGap, coarse.CompletenessGap)
						}
						t.Logf("%s integrated gradients: f(x) − f(b) = %.4f, completeness gap %.2g (%.2f%%) at 50 points, %.2g at 10, %.2g at 400", p, ig.Target-ig.BaselineTarget,
							ig.CompletenessGap, 100*ig.CompletenessGap/math.Abs(ig.Target-ig.BaselineTarget), coarse.CompletenessGap, fine.CompletenessGap)
					}
					sal, err := c.e.Explain(x, ExplainOptions{Method: Saliency, Class: -1})
					if err != nil {
						t.Fatal(err)
					}
					check(p+"saliency", sal.Attributions, p+"sal.attr")
					if !c.cam {
						continue
					}
					for _, layer := range []string{"conv3", "conv2"} {
						cam, err := c.e.Explain(x, ExplainOptions{Method: GradCAM, Class: -1, Layer: layer})
						if err != nil {
							t.Fatal(err)
						}
						check(p+"gradcam "+layer, cam.Attributions, p+"cam."+layer)
					}
				}
			}
			// A given class and baseline.
			base := make([]float32, 784)
			for i := range base {
				base[i] = -0.4242
			}
			igb, err := cases[0].e.Explain(cases[0].x[:784], ExplainOptions{Method: IntegratedGradients, Class: 3, Steps: 20, Baseline: base})
			if err != nil {
				t.Fatal(err)
			}
			check("integrated gradients of class 3 from a black image", igb.Attributions, "cnn.s0.igb.attr")
			t.Logf("largest relative error %.2g", worst)
		})
	}
}

// TestExplainErrors: bad options and models that cannot be explained are
// errors naming what is wrong.
func TestExplainErrors(t *testing.T) {
	e, err := NewExplainer(seedCNN([]int{1, 28, 28}), tensor.Reference)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 784)
	for _, c := range []struct {
		o    ExplainOptions
		x    []float32
		want string
	}{
		{ExplainOptions{Method: "shap"}, x, `method "shap"`},
		{ExplainOptions{Method: Saliency}, x[:10], "a sample of 10 values, want 784"},
		{ExplainOptions{Method: Saliency, Class: 10}, x, "class 10: the model has 10 classes"},
		{ExplainOptions{Method: IntegratedGradients, Steps: 1}, x, "steps must be 2..1024"},
		{ExplainOptions{Method: IntegratedGradients, Baseline: make([]float32, 3)}, x, "a baseline of 3 values"},
		{ExplainOptions{Method: GradCAM, Layer: "fc1"}, x, `"fc1" is not a conv2d layer of the model (conv2d layers: [conv1 conv2 conv3])`},
	} {
		_, err := e.Explain(c.x, c.o)
		if !errors.Is(err, ErrExplain) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want ErrExplain saying %q", c.o, err, c.want)
		}
	}
	if _, err := NewExplainer(ModelSpec{Input: []int{5}, Layers: []LayerSpec{{Type: "embedding", Vocab: 11, Units: 4}, {Type: "flatten"}, {Type: "dense", Units: 3}}},
		tensor.Reference); !errors.Is(err, ErrExplain) || !strings.Contains(err.Error(), "token ids") {
		t.Errorf("an embedding model: %v", err)
	}
	lstm, err := NewExplainer(ModelSpec{Input: []int{4, 5}, Layers: []LayerSpec{{Type: "lstm", Units: 7}, {Type: "dense", Units: 3}}}, tensor.Reference)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lstm.Explain(make([]float32, 20), ExplainOptions{Method: GradCAM}); !errors.Is(err, ErrExplain) || !strings.Contains(err.Error(), "has none") {
		t.Errorf("Grad-CAM of an LSTM: %v", err)
	}
}

// BenchmarkExplain: one MNIST-shaped sample through the seed CNN on one
// core: integrated gradients at 50 points (one forward and backward pass
// of 50 rows), saliency and Grad-CAM.
func BenchmarkExplain(b *testing.B) {
	be := tensor.NewGo(1)
	defer be.Close()
	spec := seedCNN([]int{1, 28, 28})
	m, err := Build(spec, be)
	if err != nil {
		b.Fatal(err)
	}
	m.Init(1)
	e, err := NewExplainer(spec, be)
	if err != nil {
		b.Fatal(err)
	}
	if err := e.SetParams(m.Params); err != nil {
		b.Fatal(err)
	}
	x := make([]float32, 784)
	for i := range x {
		x[i] = float32(i%29) / 29
	}
	for _, method := range ExplainMethods {
		b.Run(method, func(b *testing.B) {
			for b.Loop() {
				if _, err := e.Explain(x, ExplainOptions{Method: method, Class: -1}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
