package nn

import "github.com/maas-ml/maas/tensor"

// ReLU is y = max(x, 0), elementwise; Backward passes dy where y > 0.
type ReLU struct {
	layerBase
	y, dx []float32
}

func newReLU(name string, in []int, b tensor.Backend) *ReLU {
	return &ReLU{layerBase: layerBase{name: name, in: in, out: in, be: b}}
}

func (l *ReLU) Forward(x []float32, n int, train bool) []float32 {
	l.y = grow(l.y, n*prod(l.in))
	l.be.Relu(x[:len(l.y)], l.y)
	return l.y
}

func (l *ReLU) Backward(dy []float32, n int) []float32 {
	if !l.needInputGrad {
		return nil
	}
	l.dx = grow(l.dx, n*prod(l.in))
	l.be.ReluBackward(dy[:len(l.dx)], l.y, l.dx)
	return l.dx
}
