package nn

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/maas-ml/maas/tensor"
)

// TestStepHooks checks the promises a worker overlapping its step relies
// on. Forward reads no parameter beyond Params[:hi] before ParamsNeeded(hi):
// with every parameter NaN until its layer asks for it, the step is
// bit-identical to one with θ in place from the start. Backward writes
// nothing below lo after GradsReady(lo): the gradient seen at each call
// is the final one.
func TestStepHooks(t *testing.T) {
	b := tensor.NewGo(2)
	defer b.Close()
	specs := map[string]ModelSpec{
		"seed CNN": seedCNN([]int{1, 28, 28}),
		"LSTM": {Input: []int{6, 5}, Layers: []LayerSpec{
			{Type: "lstm", Units: 7, NumLayers: 2}, {Type: "dense", Units: 4}}},
	}
	for name, spec := range specs {
		m, err := Build(spec, b)
		if err != nil {
			t.Fatal(err)
		}
		m.Init(3)
		in := prod(spec.Input)
		classes := m.OutShape()[0]
		const n = 5
		rng := rand.New(rand.NewPCG(1, 2))
		x := make([]float32, n*in)
		for i := range x {
			x[i] = rng.Float32()
		}
		y := make([]int32, n)
		for i := range y {
			y[i] = int32(rng.IntN(classes))
		}
		loss := NewSoftmaxCrossEntropy(b, classes)
		step := func() float32 {
			l := loss.Forward(m.Forward(x, n, true), y, n)
			m.ZeroGrad()
			m.Backward(loss.Backward(), n)
			return l
		}
		wantLoss := step()
		want := slices.Clone(m.Grads)
		theta := slices.Clone(m.Params)

		for i := range m.Params {
			m.Params[i] = float32(math.NaN())
		}
		var needs, readies []int
		final := true
		m.SetHooks(&StepHooks{
			ParamsNeeded: func(hi int) {
				needs = append(needs, hi)
				copy(m.Params[:hi], theta[:hi])
			},
			GradsReady: func(lo int) {
				readies = append(readies, lo)
				if !slices.Equal(m.Grads[lo:], want[lo:]) {
					final = false
				}
			},
		})
		gotLoss := step()
		m.SetHooks(nil)
		if gotLoss != wantLoss || !slices.Equal(m.Grads, want) {
			t.Errorf("%s: with θ arriving layer by layer the loss is %v (want %v) and the gradient differs", name, gotLoss, wantLoss)
		}
		if !final {
			t.Errorf("%s: a gradient changed after GradsReady", name)
		}
		if !slices.IsSorted(needs) || len(needs) == 0 || needs[len(needs)-1] != len(m.Params) {
			t.Errorf("%s: ParamsNeeded calls %v: want ascending, ending at %d", name, needs, len(m.Params))
		}
		if len(readies) != len(needs) || readies[len(readies)-1] != 0 || !slices.IsSortedFunc(readies, func(a, b int) int { return b - a }) {
			t.Errorf("%s: GradsReady calls %v: want one a layer with parameters, descending to 0", name, readies)
		}
	}
}

// TestLayerCosts: a convolution's cost is its weights at every output
// position, a dense layer's its weights.
func TestLayerCosts(t *testing.T) {
	b := tensor.NewGo(1)
	defer b.Close()
	m, err := Build(ModelSpec{Input: []int{1, 8, 8}, Layers: []LayerSpec{
		{Type: "conv2d", Filters: 4, Kernel: 3, Padding: 1}, {Type: "relu"}, {Type: "flatten"}, {Type: "dense", Units: 3}}}, b)
	if err != nil {
		t.Fatal(err)
	}
	got := m.LayerCosts()
	want := []float64{(4*9 + 4) * 64, 4 * 64, 4 * 64, 4*64*3 + 3}
	if !slices.Equal(got, want) {
		t.Errorf("costs %v, want %v", got, want)
	}
}
