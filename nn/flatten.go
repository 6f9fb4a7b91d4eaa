package nn

import "github.com/maas-ml/maas/tensor"

// Flatten reshapes each sample (C, H, W) to a vector (C·H·W). The data do
// not move: row-major NCHW already is (n, C·H·W).
type Flatten struct{ layerBase }

func newFlatten(name string, in []int, b tensor.Backend) *Flatten {
	return &Flatten{layerBase{name: name, in: in, out: []int{prod(in)}, be: b}}
}

func (l *Flatten) Forward(x []float32, n int, train bool) []float32 { return x[:n*prod(l.in)] }

func (l *Flatten) Backward(dy []float32, n int) []float32 {
	if !l.needInputGrad {
		return nil
	}
	return dy
}
