package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/maas-ml/maas/tensor"
)

// The checks below compare each layer's Backward against central finite
// differences of L = Σ r ⊙ Forward(x) for a random r, on random small
// shapes, for the input gradient and every parameter's gradient.

func randVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func dot64(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// checkFD compares analytic[i] with the central difference
// (loss(v[i]+eps) − loss(v[i]−eps)) / 2eps for every stride-th i, within
// tol·(1 + |difference|).
func checkFD(t *testing.T, what string, loss func() float64, v, analytic []float32, eps, tol float64, stride int) {
	t.Helper()
	for i := 0; i < len(v); i += max(1, stride) {
		old := v[i]
		v[i] = old + float32(eps)
		up := loss()
		v[i] = old - float32(eps)
		down := loss()
		v[i] = old
		num := (up - down) / (2 * eps)
		if math.Abs(num-float64(analytic[i])) > tol*(1+math.Abs(num)) {
			t.Fatalf("%s[%d]: backward %g, finite difference %g", what, i, analytic[i], num)
		}
	}
}

// bindRandom gives l random parameter values and zeroed gradients.
func bindRandom(l Layer, r *rand.Rand) (vals, grads [][]float32) {
	specs := l.Params()
	vals, grads = make([][]float32, len(specs)), make([][]float32, len(specs))
	for i, p := range specs {
		vals[i], grads[i] = randVec(r, prod(p.Shape)), make([]float32, prod(p.Shape))
	}
	l.Bind(vals, grads)
	return vals, grads
}

// gradCheck checks layer l at batch n. prepare, if set, runs before every
// Forward (Dropout uses it to replay the same mask).
func gradCheck(t *testing.T, l Layer, n int, x []float32, r *rand.Rand, prepare func()) {
	t.Helper()
	setNeedInputGrad(l, true)
	vals, grads := bindRandom(l, r)
	proj := randVec(r, n*prod(l.OutShape()))
	loss := func() float64 {
		if prepare != nil {
			prepare()
		}
		return dot64(l.Forward(x, n, true), proj)
	}
	loss()
	dx := append([]float32(nil), l.Backward(proj, n)...)
	// Up to ~40 coordinates per tensor.
	checkFD(t, l.Name()+" dx", loss, x, dx, 1e-2, 2e-3, len(x)/40)
	for i, p := range l.Params() {
		checkFD(t, l.Name()+" "+p.Name, loss, vals[i], grads[i], 1e-2, 2e-3, len(vals[i])/40)
	}
}

// checkModelGradients checks every parameter tensor of m (about 15
// coordinates each) against finite differences of loss, after one
// Backward of it.
func checkModelGradients(t *testing.T, m *Model, loss func() float64, backward func(), eps, tol float64) {
	t.Helper()
	loss()
	m.ZeroGrad()
	backward()
	for _, v := range m.Views {
		checkFD(t, v.Name, loss, m.Params[v.Offset:v.Offset+v.Size], m.Grads[v.Offset:v.Offset+v.Size], eps, tol, v.Size/15)
	}
}

func TestLayerGradients(t *testing.T) {
	b := tensor.NewGo(2)
	defer b.Close()
	r := rand.New(rand.NewPCG(42, 1))
	cases := []struct {
		spec LayerSpec
		in   []int
	}{
		{LayerSpec{Type: "conv2d", Filters: 3, Kernel: 3, Padding: 1}, []int{2, 5, 5}},
		{LayerSpec{Type: "conv2d", Filters: 4, Kernel: 2, Stride: 2}, []int{3, 6, 7}},
		{LayerSpec{Type: "conv2d", Filters: 2, Kernel: 3, Stride: 2, Padding: 2}, []int{1, 4, 4}},
		{LayerSpec{Type: "conv2d", Filters: 5, Kernel: 1}, []int{3, 3, 2}},
		{LayerSpec{Type: "dense", Units: 7}, []int{5}},
		{LayerSpec{Type: "dense", Units: 1}, []int{13}},
		{LayerSpec{Type: "maxpool2d", Kernel: 2}, []int{2, 4, 5}},
		{LayerSpec{Type: "maxpool2d", Kernel: 3, Stride: 2}, []int{1, 7, 7}},
		{LayerSpec{Type: "relu"}, []int{3, 4}},
		{LayerSpec{Type: "flatten"}, []int{2, 3, 4}},
		{LayerSpec{Type: "dropout", Rate: 0.3}, []int{20}},
	}
	for i, c := range cases {
		for _, n := range []int{1, 3} {
			t.Run(fmt.Sprintf("%d-%s/n=%d", i, c.spec.Type, n), func(t *testing.T) {
				plans, err := ModelSpec{Input: c.in, Layers: []LayerSpec{c.spec}}.shapes()
				if err != nil {
					t.Fatal(err)
				}
				l, err := newLayer(plans[0], b)
				if err != nil {
					t.Fatal(err)
				}
				x := randVec(r, n*prod(c.in))
				switch c.spec.Type {
				case "maxpool2d":
					// Distinct values 0.1 apart, so a step of eps never changes a maximum.
					for i, p := range r.Perm(len(x)) {
						x[i] = float32(p) * 0.1
					}
				case "relu":
					for i, v := range x { // keep clear of the kink at 0
						x[i] = v + float32(math.Copysign(0.1, float64(v)))
					}
				}
				var prepare func()
				if d, ok := l.(*Dropout); ok {
					d.rng = splitMix(7)
					saved := d.rng
					prepare = func() { d.rng = saved }
				}
				gradCheck(t, l, n, x, r, prepare)
			})
		}
	}
}

func TestLossGradient(t *testing.T) {
	b := tensor.Reference
	r := rand.New(rand.NewPCG(3, 9))
	for _, c := range []struct{ n, classes int }{{1, 2}, {4, 10}, {7, 3}} {
		logits := randVec(r, c.n*c.classes)
		labels := make([]int32, c.n)
		for i := range labels {
			labels[i] = int32(r.IntN(c.classes))
		}
		l := NewSoftmaxCrossEntropy(b, c.classes)
		l.Forward(logits, labels, c.n)
		grad := append([]float32(nil), l.Backward()...)
		const eps = 1e-2
		for i := range logits {
			old := logits[i]
			logits[i] = old + eps
			up := float64(l.Forward(logits, labels, c.n))
			logits[i] = old - eps
			down := float64(l.Forward(logits, labels, c.n))
			logits[i] = old
			num := (up - down) / (2 * eps)
			if math.Abs(num-float64(grad[i])) > 1e-3*(1+math.Abs(num)) {
				t.Fatalf("n=%d classes=%d: dL/dlogits[%d] = %g, finite difference %g", c.n, c.classes, i, grad[i], num)
			}
		}
	}
	// A known value: uniform logits give log(classes).
	l := NewSoftmaxCrossEntropy(b, 4)
	if got := l.Forward(make([]float32, 8), []int32{0, 3}, 2); math.Abs(float64(got)-math.Log(4)) > 1e-6 {
		t.Fatalf("loss of uniform logits = %g, want ln 4 = %g", got, math.Log(4))
	}
}

// TestModelGradients checks a whole small CNN end to end, loss included,
// against finite differences of the loss in every parameter tensor.
func TestModelGradients(t *testing.T) {
	b := tensor.NewGo(2)
	defer b.Close()
	spec := ModelSpec{Input: []int{2, 6, 6}, Layers: []LayerSpec{
		{Type: "conv2d", Filters: 3, Kernel: 3, Padding: 1},
		{Type: "relu"},
		{Type: "maxpool2d", Kernel: 2},
		{Type: "conv2d", Filters: 4, Kernel: 2},
		{Type: "relu"},
		{Type: "flatten"},
		{Type: "dense", Units: 6},
		{Type: "relu"},
		{Type: "dense", Units: 3},
	}}
	m, err := Build(spec, b)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(5)
	r := rand.New(rand.NewPCG(8, 8))
	const n = 4
	x := randVec(r, n*72)
	labels := []int32{0, 2, 1, 2}
	lossFn := NewSoftmaxCrossEntropy(b, 3)
	loss := func() float64 { return float64(lossFn.Forward(m.Forward(x, n, true), labels, n)) }
	// eps 1e-3: larger steps cross ReLU and max-pool kinks.
	checkModelGradients(t, m, loss, func() { m.Backward(lossFn.Backward(), n) }, 1e-3, 2e-3)
}
