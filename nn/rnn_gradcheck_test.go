package nn

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/maas-ml/maas/tensor"
)

// Finite-difference checks of the recurrent layers and the embedding, in the
// manner of TestLayerGradients (gradcheck_test.go).

func buildLayer(t *testing.T, in []int, spec LayerSpec, b tensor.Backend) Layer {
	t.Helper()
	plans, err := ModelSpec{Input: in, Layers: []LayerSpec{spec}}.shapes()
	if err != nil {
		t.Fatal(err)
	}
	l, err := newLayer(plans[0], b)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRecurrentGradients(t *testing.T) {
	b := tensor.NewGo(2)
	defer b.Close()
	r := rand.New(rand.NewPCG(11, 3))
	for _, typ := range []string{"lstm", "gru"} {
		for _, c := range []struct{ steps, feat, hidden, layers int }{
			{1, 3, 2, 1}, {2, 2, 3, 1}, {4, 3, 4, 1}, {3, 4, 3, 2}, {4, 2, 2, 2}, {1, 2, 3, 2},
		} {
			for _, seq := range []bool{false, true} {
				for _, n := range []int{1, 3} {
					name := fmt.Sprintf("%s/T=%d,F=%d,H=%d,layers=%d,seq=%v/n=%d", typ, c.steps, c.feat, c.hidden, c.layers, seq, n)
					t.Run(name, func(t *testing.T) {
						in := []int{c.steps, c.feat}
						l := buildLayer(t, in, LayerSpec{Type: typ, Units: c.hidden, NumLayers: c.layers, ReturnSequences: seq}, b)
						want := []int{c.hidden}
						if seq {
							want = []int{c.steps, c.hidden}
						}
						if !slices.Equal(l.OutShape(), want) {
							t.Fatalf("OutShape %v, want %v", l.OutShape(), want)
						}
						gradCheck(t, l, n, randVec(r, n*prod(in)), r, nil)
					})
				}
			}
		}
	}
}

// TestRecurrentBatchGrowth runs a large batch, then a small one, then the
// large one again: buffers sized for the largest batch must give the same
// output as a fresh layer.
func TestRecurrentBatchGrowth(t *testing.T) {
	b := tensor.Reference
	r := rand.New(rand.NewPCG(5, 5))
	for _, typ := range []string{"lstm", "gru"} {
		spec := LayerSpec{Type: typ, Units: 3, NumLayers: 2, ReturnSequences: true}
		in := []int{3, 2}
		l := buildLayer(t, in, spec, b)
		vals := make([][]float32, len(l.Params()))
		for i, p := range l.Params() {
			vals[i] = randVec(r, prod(p.Shape))
		}
		l.Bind(vals, nil)
		big, small := randVec(r, 4*6), randVec(r, 2*6)
		first := slices.Clone(l.Forward(big, 4, false))
		l.Forward(small, 2, false)
		if got := l.Forward(big, 4, false); !slices.Equal(got, first) {
			t.Errorf("%s: output changed after a smaller batch", typ)
		}
	}
}

// gradCheckParams is gradCheck without the input gradient, for layers whose
// input is not differentiable (embedding ids): Backward must return nil.
func gradCheckParams(t *testing.T, l Layer, n int, x []float32, r *rand.Rand) {
	t.Helper()
	vals, grads := bindRandom(l, r)
	proj := randVec(r, n*prod(l.OutShape()))
	loss := func() float64 { return dot64(l.Forward(x, n, true), proj) }
	loss()
	if dx := l.Backward(proj, n); dx != nil {
		t.Fatalf("%s: Backward returned an input gradient", l.Name())
	}
	for k, p := range l.Params() {
		checkFD(t, l.Name()+" "+p.Name, loss, vals[k], grads[k], 1e-2, 2e-3, 1)
	}
}

func TestEmbeddingGradients(t *testing.T) {
	b := tensor.Reference
	r := rand.New(rand.NewPCG(2, 7))
	const vocab, dim, steps = 5, 3, 4
	for _, n := range []int{1, 3} {
		l := buildLayer(t, []int{steps}, LayerSpec{Type: "embedding", Vocab: vocab, Units: dim}, b)
		ids := make([]float32, n*steps)
		for i := range ids {
			ids[i] = float32(r.IntN(vocab)) // repeats exercise the scatter-add
		}
		ids[0] = -1 // invalid ids: zero vectors, no gradient
		ids[len(ids)-1] = vocab
		gradCheckParams(t, l, n, ids, r)
	}
}

func TestEmbeddingInvalidIDs(t *testing.T) {
	l := buildLayer(t, []int{6}, LayerSpec{Type: "embedding", Vocab: 3, Units: 2}, tensor.Reference)
	w := []float32{1, 2, 3, 4, 5, 6}
	dw := make([]float32, 6)
	l.Bind([][]float32{w}, [][]float32{dw})
	nan := float32(math.NaN())
	ids := []float32{2, -1, 3, 0.5, nan, 0}
	y := l.Forward(ids, 1, true)
	if want := []float32{5, 6, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2}; !slices.Equal(y, want) {
		t.Fatalf("Forward = %v, want %v", y, want)
	}
	l.Backward([]float32{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 1)
	if want := []float32{1, 1, 0, 0, 1, 1}; !slices.Equal(dw, want) {
		t.Fatalf("weight gradient %v, want %v", dw, want)
	}
	if err := CheckTokenIDs(ids, 3); !errors.Is(err, ErrTokenID) {
		t.Fatalf("CheckTokenIDs = %v, want ErrTokenID", err)
	}
	if err := CheckTokenIDs([]float32{0, 1, 2}, 3); err != nil {
		t.Fatal(err)
	}
}

// TestSequenceModelGradients checks embedding → lstm (sequences) → dense per
// step → gru → dense end to end through Model, loss included: the input
// gradients between layers and the embedding as first layer.
func TestSequenceModelGradients(t *testing.T) {
	b := tensor.NewGo(2)
	defer b.Close()
	spec := ModelSpec{Input: []int{4}, Layers: []LayerSpec{
		{Type: "embedding", Vocab: 6, Units: 3},
		{Type: "lstm", Units: 4, ReturnSequences: true},
		{Type: "dense", Units: 3},
		{Type: "gru", Units: 3, NumLayers: 2},
		{Type: "dense", Units: 2},
	}}
	m, err := Build(spec, b)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(3)
	const n = 3
	x := []float32{0, 1, 2, 5, 5, 4, 3, 2, 1, 1, 0, 3}
	labels := []int32{0, 1, 1}
	lossFn := NewSoftmaxCrossEntropy(b, 2)
	loss := func() float64 { return float64(lossFn.Forward(m.Forward(x, n, true), labels, n)) }
	checkModelGradients(t, m, loss, func() { m.Backward(lossFn.Backward(), n) }, 1e-2, 1e-3)
}

func TestRecurrentSpecs(t *testing.T) {
	ok := []struct {
		spec ModelSpec
		out  []int
	}{
		{ModelSpec{Input: []int{28, 28}, Layers: []LayerSpec{{Type: "lstm", Units: 128}, {Type: "dense", Units: 10}}}, []int{10}},
		{ModelSpec{Input: []int{5, 3}, Layers: []LayerSpec{{Type: "gru", Units: 4, NumLayers: 3, ReturnSequences: true}}}, []int{5, 4}},
		{ModelSpec{Input: []int{7}, Layers: []LayerSpec{{Type: "embedding", Vocab: 11, Units: 6}, {Type: "lstm", Units: 8, ReturnSequences: true}, {Type: "dense", Units: 11}}}, []int{7, 11}},
	}
	for _, c := range ok {
		if out, err := OutputShape(c.spec); err != nil || !slices.Equal(out, c.out) {
			t.Errorf("%v: OutputShape = %v, %v; want %v", c.spec.Layers, out, err, c.out)
		}
	}
	bad := []struct {
		spec  ModelSpec
		field string
	}{
		{ModelSpec{Input: []int{1, 28, 28}, Layers: []LayerSpec{{Type: "lstm", Units: 8}}}, "model.layers[0]"},
		{ModelSpec{Input: []int{28, 28}, Layers: []LayerSpec{{Type: "lstm"}}}, "model.layers[0].units"},
		{ModelSpec{Input: []int{28, 28}, Layers: []LayerSpec{{Type: "gru", Units: 4, NumLayers: -1}}}, "model.layers[0].layers"},
		{ModelSpec{Input: []int{28, 28}, Layers: []LayerSpec{{Type: "dense", Units: 4, ReturnSequences: true}}}, "model.layers[0].return_sequences"},
		{ModelSpec{Input: []int{28, 28}, Layers: []LayerSpec{{Type: "lstm", Units: 4, Vocab: 3}}}, "model.layers[0].vocab"},
		{ModelSpec{Input: []int{8}, Layers: []LayerSpec{{Type: "embedding", Units: 4}}}, "model.layers[0].vocab"},
		{ModelSpec{Input: []int{8}, Layers: []LayerSpec{{Type: "embedding", Vocab: 4, Units: 4, NumLayers: 2}}}, "model.layers[0].layers"},
		{ModelSpec{Input: []int{8, 2}, Layers: []LayerSpec{{Type: "embedding", Vocab: 4, Units: 4}}}, "model.layers[0]"},
		{ModelSpec{Input: []int{8}, Layers: []LayerSpec{{Type: "relu"}, {Type: "embedding", Vocab: 4, Units: 4}}}, "model.layers[1]"},
	}
	for _, c := range bad {
		err := c.spec.Validate()
		var se *SpecError
		if !errors.As(err, &se) || se.Field != c.field {
			t.Errorf("%v: Validate = %v, want an error on %s", c.spec.Layers, err, c.field)
		}
	}
}

// TestRecurrentInit checks the default names, PyTorch's parameter names and
// shapes, and the init ranges: U(−1/√H, 1/√H) for the recurrent weights under
// both model inits, N(0, 1) for the embedding.
func TestRecurrentInit(t *testing.T) {
	for _, init := range []string{"", InitTorch} {
		spec := ModelSpec{Input: []int{5}, Init: init, Layers: []LayerSpec{
			{Type: "embedding", Vocab: 50, Units: 40},
			{Type: "lstm", Units: 16, NumLayers: 2, ReturnSequences: true},
			{Type: "gru", Units: 9},
			{Type: "dense", Units: 3},
		}}
		m, err := Build(spec, tensor.Reference)
		if err != nil {
			t.Fatal(err)
		}
		m.Init(1)
		var names []string
		for _, v := range m.Views {
			names = append(names, fmt.Sprint(v.Name, v.Shape))
		}
		want := []string{"embed1.weight[50 40]",
			"lstm1.weight_ih_l0[64 40]", "lstm1.weight_hh_l0[64 16]", "lstm1.bias_ih_l0[64]", "lstm1.bias_hh_l0[64]",
			"lstm1.weight_ih_l1[64 16]", "lstm1.weight_hh_l1[64 16]", "lstm1.bias_ih_l1[64]", "lstm1.bias_hh_l1[64]",
			"gru1.weight_ih_l0[27 16]", "gru1.weight_hh_l0[27 9]", "gru1.bias_ih_l0[27]", "gru1.bias_hh_l0[27]",
			"fc1.weight[3 9]", "fc1.bias[3]"}
		if !slices.Equal(names, want) {
			t.Fatalf("init %q: views %v, want %v", init, names, want)
		}
		for _, v := range m.Views {
			p := m.Params[v.Offset : v.Offset+v.Size]
			lo, hi := slices.Min(p), slices.Max(p)
			switch v.Name[:3] {
			case "lst", "gru":
				bound := float32(1 / math.Sqrt(float64(v.spec.FanIn)))
				if lo < -bound || hi > bound || hi-lo < bound {
					t.Errorf("init %q: %s in [%g, %g], want U(±%g)", init, v.Name, lo, hi, bound)
				}
			case "emb":
				mean, sq := 0.0, 0.0
				for _, x := range p {
					mean += float64(x)
					sq += float64(x) * float64(x)
				}
				mean /= float64(len(p))
				if std := math.Sqrt(sq/float64(len(p)) - mean*mean); math.Abs(mean) > 0.1 || math.Abs(std-1) > 0.1 {
					t.Errorf("init %q: %s mean %g std %g, want N(0, 1)", init, v.Name, mean, std)
				}
			}
		}
	}
}

// TestRecurrentNoAllocs checks that a training step of a warmed-up layer
// allocates nothing: buffers are grown once, not per step.
func TestRecurrentNoAllocs(t *testing.T) {
	b := tensor.Reference
	r := rand.New(rand.NewPCG(9, 9))
	for _, spec := range []LayerSpec{
		{Type: "lstm", Units: 4, NumLayers: 2, ReturnSequences: true},
		{Type: "gru", Units: 4, NumLayers: 2},
		{Type: "embedding", Vocab: 5, Units: 4},
	} {
		in := []int{6, 3}
		if spec.Type == "embedding" {
			in = []int{6}
		}
		l := buildLayer(t, in, spec, b)
		setNeedInputGrad(l, spec.Type != "embedding")
		vals, grads := make([][]float32, len(l.Params())), make([][]float32, len(l.Params()))
		for i, p := range l.Params() {
			vals[i], grads[i] = randVec(r, prod(p.Shape)), make([]float32, prod(p.Shape))
		}
		l.Bind(vals, grads)
		const n = 4
		x := make([]float32, n*prod(in)) // zeros: valid ids too
		dy := randVec(r, n*prod(l.OutShape()))
		step := func() {
			l.Forward(x, n, true)
			l.Backward(dy, n)
		}
		step()
		if a := testing.AllocsPerRun(5, step); a != 0 {
			t.Errorf("%s: %g allocations per step", spec.Type, a)
		}
	}
}
