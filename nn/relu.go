package nn

import "github.com/maas-ml/maas/tensor"

// ReLU is y = max(x, 0), elementwise; Backward passes dy where y > 0.
type ReLU struct {
	layerBase
	// fused: the layer before already applied max(·, 0), so Forward passes
	// its input through (and Backward masks with it as usual).
	fused bool
	// passBack: the max-pool after it masked the gradient already (see
	// fuseLayers), so Backward passes dy through.
	passBack bool
	y, dx    []float32
}

func newReLU(name string, in []int, b tensor.Backend) *ReLU {
	return &ReLU{layerBase: layerBase{name: name, in: in, out: in, be: b}}
}

func (l *ReLU) Forward(x []float32, n int, train bool) []float32 {
	if l.fused {
		l.y = x[:n*prod(l.in)]
		return l.y
	}
	l.y = grow(l.y, n*prod(l.in))
	l.be.Relu(x[:len(l.y)], l.y)
	return l.y
}

func (l *ReLU) Backward(dy []float32, n int) []float32 {
	if !l.needInputGrad {
		return nil
	}
	if l.passBack {
		return dy[:n*prod(l.in)]
	}
	l.dx = grow(l.dx, n*prod(l.in))
	l.be.ReluBackward(dy[:len(l.dx)], l.y, l.dx)
	return l.dx
}
