package nn

import (
	"slices"

	"github.com/maas-ml/maas/tensor"
)

// Dense is a fully connected layer: x (n, in) → y = x·Wᵀ + b (n, out), with
// weight (out, in) and bias (out), PyTorch's Linear layout. On a sequence
// x (n, T, in) it applies the same weights at every step, y (n, T, out), as
// PyTorch's Linear does on the last dimension: the batch is n·T rows.
type Dense struct {
	layerBase
	nin, nout int
	steps     int     // rows per sample: T for a (T, in) input, else 1
	w         weights // (out, in): the right operand, transposed
	bias      []float32
	dw, db    []float32
	x         []float32 // the last input, for Backward
	y, dx     []float32
	fanInit   string
}

func newDense(name string, in []int, units int, b tensor.Backend) *Dense {
	lead := in[:len(in)-1]
	out := append(slices.Clone(lead), units)
	return &Dense{layerBase: layerBase{name: name, in: in, out: out, be: b}, nin: in[len(in)-1], nout: units, steps: prod(lead), fanInit: InitHe}
}

func (l *Dense) Params() []ParamSpec {
	return []ParamSpec{
		{Name: l.name + ".weight", Shape: []int{l.nout, l.nin}, Init: l.fanInit, FanIn: l.nin, FanOut: l.nout},
		{Name: l.name + ".bias", Shape: []int{l.nout}, Init: InitZero, FanIn: l.nin},
	}
}

func (l *Dense) Bind(v, g [][]float32) {
	l.w.bind(v[0], l.nout, l.nin, false)
	l.bias, l.dw, l.db = v[1], g[0], g[1]
}

func (l *Dense) changed() { l.w.valid = false }

func (l *Dense) Forward(x []float32, n int, train bool) []float32 {
	n *= l.steps
	l.x = x
	l.y = grow(l.y, n*l.nout)
	// y (n, out) = x (n, in) · Wᵀ (in, out)
	l.be.GemmPacked(n, 1, x, l.nin, l.w.forUse(&l.layerBase), 0, l.y, l.nout)
	l.be.AddBias(l.y, l.bias, n, 1)
	return l.y
}

func (l *Dense) Backward(dy []float32, n int) []float32 {
	n *= l.steps
	if !l.inputGradOnly {
		// dW (out, in) += dyᵀ (out, n) · x (n, in)
		l.be.Gemm(true, false, l.nout, l.nin, n, 1, dy, l.nout, l.x, l.nin, 1, l.dw, l.nin)
		l.be.SumBias(dy, l.db, n, 1)
	}
	if !l.needInputGrad {
		return nil
	}
	// dx (n, in) = dy (n, out) · W (out, in)
	l.dx = grow(l.dx, n*l.nin)
	l.be.Gemm(false, false, n, l.nin, l.nout, 1, dy, l.nout, l.w.W, l.nin, 0, l.dx, l.nin)
	return l.dx
}
