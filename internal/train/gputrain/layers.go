package gputrain

import (
	"fmt"

	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/tensor"
	"github.com/maas-ml/maas/tensor/cuda"
)

// devLayer is one layer of a Trainer's model on the device, package nn's
// layer of the same type with its buffers laid out once. forward queues
// the layer on x (n, in...) and returns its output; backward takes dL/dy
// and returns dL/dx, or 0 when no layer below needs it (the backward pass
// stops there). Both only queue work, on q.
type devLayer interface {
	forward(q *cuda.Queue, t *Trainer, x uintptr, n int) uintptr
	backward(q *cuda.Queue, t *Trainer, dy uintptr, n int) uintptr
}

// param is one parameter tensor's offset, in floats, into the flat vector
// (and the gradient's into the gradient vector).
type param int

func (t *Trainer) p(o param) uintptr { return t.params + 4*uintptr(o) }
func (t *Trainer) g(o param) uintptr { return t.grads + 4*uintptr(o) }

// buildLayers makes the device layers of m (built from spec) and lays out
// their buffers for batches of up to batch samples.
func (t *Trainer) buildLayers(spec nn.ModelSpec, m *nn.Model, batch int, lay *layout) error {
	if t.nparams == 0 {
		return fmt.Errorf("gputrain: the model has no parameters to train")
	}
	var colFloats, tmpFloats int
	view := 0
	next := func() param { // the next parameter tensor's offset
		v := m.Views[view]
		view++
		return param(v.Offset)
	}
	need := false // whether a layer below has parameters, so needs dL/dx
	for i, nl := range m.Layers {
		s := spec.Layers[i]
		in, out := nl.InShape(), nl.OutShape()
		inN, outN := batch*tensor.NumElements(in), batch*tensor.NumElements(out)
		var l devLayer
		switch s.Type {
		case "conv2d":
			stride := max(s.Stride, 1)
			c := &convLayer{g: tensor.ConvGeom{C: in[0], H: in[1], W: in[2], KH: s.Kernel, KW: s.Kernel, SH: stride, SW: stride, PH: s.Padding, PW: s.Padding},
				oc: s.Filters, needDx: need, relu: i+1 < len(spec.Layers) && spec.Layers[i+1].Type == "relu"}
			c.w, c.bias = next(), next()
			p := c.g.OH() * c.g.OW()
			colFloats = max(colFloats, c.g.Rows()*batch*p)
			tmpFloats = max(tmpFloats, c.oc*batch*p)
			lay.take(&c.y, 4*outN)
			if need {
				lay.take(&c.dx, 4*inN)
			}
			l = c
		case "relu":
			r := &reluLayer{fused: i > 0 && spec.Layers[i-1].Type == "conv2d", needDx: need, size: tensor.NumElements(in)}
			if !r.fused {
				lay.take(&r.y, 4*outN)
			}
			l = r
		case "maxpool2d":
			stride := s.Stride
			if stride == 0 {
				stride = s.Kernel
			}
			mp := &poolLayer{g: tensor.PoolGeom{H: in[1], W: in[2], KH: s.Kernel, KW: s.Kernel, SH: stride, SW: stride}, c: in[0], needDx: need}
			lay.take(&mp.y, 4*outN)
			lay.take(&mp.idx, 4*outN)
			if need {
				lay.take(&mp.dx, 4*inN)
			}
			l = mp
		case "flatten":
			l = flattenLayer{needDx: need}
		case "dense":
			d := &denseLayer{nin: in[len(in)-1], nout: s.Units, steps: tensor.NumElements(in[:len(in)-1]), needDx: need}
			d.w, d.bias = next(), next()
			lay.take(&d.y, 4*outN)
			if need {
				lay.take(&d.dx, 4*inN)
			}
			l = d
		case "lstm", "gru":
			r := newRNNLayer(s, in, need, next)
			r.lay(lay, batch)
			l = r
		}
		t.layers = append(t.layers, l)
		if len(nl.Params()) > 0 {
			need = true
		}
	}
	if colFloats > 0 {
		lay.take(&t.col, 4*colFloats)
		lay.take(&t.tmp, 4*tmpFloats)
	}
	return nil
}

// convLayer is nn.Conv2D: x (n, C, H, W) → y (n, OC, OH, OW), with the
// ReLU after it applied in its epilogue when relu (as nn fuses them).
//
//	forward:  col = im2col(x) (C·KH·KW, n·P); yc = W·col (OC, n·P); y = relu(yc + bias)
//	backward: dyt = dy as (OC, n·P); dW += dyt·colᵀ; db += Σ dy; dx = col2im(Wᵀ·dyt)
type convLayer struct {
	g       tensor.ConvGeom
	oc      int
	relu    bool
	needDx  bool
	w, bias param
	x       uintptr // the last input
	y, dx   uintptr
}

func (l *convLayer) forward(q *cuda.Queue, t *Trainer, x uintptr, n int) uintptr {
	rows, p := l.g.Rows(), l.g.OH()*l.g.OW()
	l.x = x
	q.Im2col(l.g, n, x, t.col)
	q.Gemm(false, false, l.oc, n*p, rows, 1, t.p(l.w), rows, t.col, n*p, 0, t.tmp, n*p)
	q.ConvBiasRelu(t.tmp, t.p(l.bias), l.y, n, l.oc, p, l.relu)
	return l.y
}

func (l *convLayer) backward(q *cuda.Queue, t *Trainer, dy uintptr, n int) uintptr {
	rows, p := l.g.Rows(), l.g.OH()*l.g.OW()
	np := n * p
	q.Im2col(l.g, n, l.x, t.col)
	q.Transpose021(dy, t.tmp, n, l.oc, p)
	q.Gemm(false, true, l.oc, rows, np, 1, t.tmp, np, t.col, np, 1, t.g(l.w), rows)
	q.SumBias(dy, t.g(l.bias), n, l.oc, p)
	if !l.needDx {
		return 0
	}
	// dcol (C·KH·KW, n·P) = Wᵀ · dyt overwrites col.
	q.Gemm(true, false, rows, np, l.oc, 1, t.p(l.w), rows, t.tmp, np, 0, t.col, np)
	q.Col2im(l.g, n, t.col, l.dx)
	return l.dx
}

// reluLayer is nn.ReLU. After a convolution (fused) its input already is
// max(·, 0) and passes through; its backward masks dy in place (dy is the
// buffer of the layer above, not read again in the step).
type reluLayer struct {
	fused  bool
	needDx bool
	size   int     // floats per sample
	y      uintptr // the output: its own buffer, or the input when fused
}

func (l *reluLayer) forward(q *cuda.Queue, _ *Trainer, x uintptr, n int) uintptr {
	if l.fused {
		l.y = x
		return x
	}
	q.Relu(x, l.y, n*l.size)
	return l.y
}

func (l *reluLayer) backward(q *cuda.Queue, _ *Trainer, dy uintptr, n int) uintptr {
	if !l.needDx {
		return 0
	}
	q.ReluBackward(dy, l.y, dy, n*l.size)
	return dy
}

// poolLayer is nn.MaxPool2D over the n·C planes of x (n, C, H, W).
type poolLayer struct {
	g          tensor.PoolGeom
	c          int
	needDx     bool
	y, idx, dx uintptr
}

func (l *poolLayer) forward(q *cuda.Queue, _ *Trainer, x uintptr, n int) uintptr {
	q.MaxPool(l.g, n*l.c, x, l.y, l.idx)
	return l.y
}

func (l *poolLayer) backward(q *cuda.Queue, _ *Trainer, dy uintptr, n int) uintptr {
	if !l.needDx {
		return 0
	}
	q.MaxPoolBackward(l.g, n*l.c, dy, l.idx, l.dx)
	return l.dx
}

// flattenLayer is nn.Flatten: the data do not move.
type flattenLayer struct{ needDx bool }

func (flattenLayer) forward(_ *cuda.Queue, _ *Trainer, x uintptr, _ int) uintptr { return x }

func (l flattenLayer) backward(_ *cuda.Queue, _ *Trainer, dy uintptr, _ int) uintptr {
	if !l.needDx {
		return 0
	}
	return dy
}

// denseLayer is nn.Dense: y (rows, out) = x (rows, in) · Wᵀ + b, with rows
// = n·steps for a sequence input.
type denseLayer struct {
	nin, nout, steps int
	needDx           bool
	w, bias          param
	x, y, dx         uintptr
}

func (l *denseLayer) forward(q *cuda.Queue, t *Trainer, x uintptr, n int) uintptr {
	rows := n * l.steps
	l.x = x
	q.Gemm(false, true, rows, l.nout, l.nin, 1, x, l.nin, t.p(l.w), l.nin, 0, l.y, l.nout)
	q.AddBias(l.y, t.p(l.bias), rows, l.nout, 1)
	return l.y
}

func (l *denseLayer) backward(q *cuda.Queue, t *Trainer, dy uintptr, n int) uintptr {
	rows := n * l.steps
	// dW (out, in) += dyᵀ (out, rows) · x (rows, in); db += Σ dy
	q.Gemm(true, false, l.nout, l.nin, rows, 1, dy, l.nout, l.x, l.nin, 1, t.g(l.w), l.nin)
	q.SumBias(dy, t.g(l.bias), rows, l.nout, 1)
	if !l.needDx {
		return 0
	}
	// dx (rows, in) = dy (rows, out) · W (out, in)
	q.Gemm(false, false, rows, l.nin, l.nout, 1, dy, l.nout, t.p(l.w), l.nin, 0, l.dx, l.nin)
	return l.dx
}
