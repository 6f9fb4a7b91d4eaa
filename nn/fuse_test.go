package nn

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/maas-ml/maas/tensor"
)

// TestFusedLayersBitIdentical: the seed CNN with its layers fused (conv
// with the ReLU after it; max-pool applying the backward mask of the ReLU
// before it) gives bit for bit the outputs and gradients of the same
// model with every layer on its own, including on inputs whose ReLU
// outputs are zero across whole pooling windows, and with overlapping
// pooling windows.
func TestFusedLayersBitIdentical(t *testing.T) {
	b := tensor.NewGo(2)
	defer b.Close()
	overlap := ModelSpec{Input: []int{2, 9, 9}, Layers: []LayerSpec{
		{Type: "conv2d", Filters: 4, Kernel: 3, Padding: 1}, {Type: "relu"}, {Type: "maxpool2d", Kernel: 3, Stride: 2},
		{Type: "flatten"}, {Type: "dense", Units: 5},
	}}
	for name, spec := range map[string]ModelSpec{"seed CNN": seedCNN([]int{1, 28, 28}), "overlapping pools": overlap} {
		fused, err := Build(spec, b)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := Build(spec, b)
		if err != nil {
			t.Fatal(err)
		}
		fused.Init(7)
		copy(plain.Params, fused.Params)
		fusions := 0
		for _, l := range plain.Layers {
			switch l := l.(type) {
			case *Conv2D:
				fusions += btoi(l.relu)
				l.relu = false
			case *ReLU:
				fusions += btoi(l.fused) + btoi(l.passBack)
				l.fused, l.passBack = false, false
			case *MaxPool2D:
				fusions += btoi(l.maskPositive)
				l.maskPositive = false
			}
		}
		if fusions == 0 {
			t.Fatalf("%s: nothing was fused", name)
		}
		defer func(name string, pool *MaxPool2D) {
			// The inputs must reach the case the fusion is about: windows
			// whose maximum is a ReLU's zero.
			zeros := 0
			for _, v := range pool.y {
				zeros += btoi(v == 0)
			}
			if zeros == 0 || zeros == len(pool.y) {
				t.Errorf("%s: %d of %d pooled values are 0; want some", name, zeros, len(pool.y))
			}
		}(name, firstPool(fused))
		r := rand.New(rand.NewPCG(5, 6))
		const n = 8
		x := make([]float32, n*prod(spec.Input))
		for i := range x {
			x[i] = float32(r.NormFloat64())
			if i < len(x)/2 {
				x[i] = -float32(math.Abs(float64(x[i]))) // many all-zero ReLU windows
			}
		}
		outF, outP := fused.Forward(x, n, true), plain.Forward(x, n, true)
		dy := make([]float32, len(outF))
		for i := range dy {
			dy[i] = float32(r.NormFloat64())
		}
		fused.ZeroGrad()
		plain.ZeroGrad()
		fused.Backward(dy, n)
		plain.Backward(dy, n)
		for i := range outF {
			if math.Float32bits(outF[i]) != math.Float32bits(outP[i]) {
				t.Fatalf("%s: output %d: fused %v, separate %v", name, i, outF[i], outP[i])
			}
		}
		for i := range fused.Grads {
			if math.Float32bits(fused.Grads[i]) != math.Float32bits(plain.Grads[i]) {
				t.Fatalf("%s: gradient %d: fused %v, separate %v", name, i, fused.Grads[i], plain.Grads[i])
			}
		}
	}
}

func firstPool(m *Model) *MaxPool2D {
	for _, l := range m.Layers {
		if p, ok := l.(*MaxPool2D); ok {
			return p
		}
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
