package nn

import "github.com/maas-ml/maas/tensor"

// Conv2D is a 2-D convolution with bias: x (n, C, H, W) → y (n, OC, OH, OW),
// weight (OC, C, KH, KW), bias (OC). The backend computes the forward pass
// (one GEMM per image, bias and a fused ReLU applied in cache); in training
// it also keeps the batch's im2col col (C·KH·KW, n·OH·OW), and Backward runs
// one GEMM for the whole batch per gradient.
type Conv2D struct {
	layerBase
	g      tensor.ConvGeom
	oc     int
	w      weights   // (OC, C·KH·KW), left operand
	bias   []float32 // (OC)
	dw, db []float32
	// relu applies max(·, 0) to the output: the following ReLU layer is
	// fused into this one (see fuseLayers).
	relu     bool
	col      []float32 // im2col of the last training input
	colValid bool
	tmp      []float32 // (OC, n·P): dyᵀ in Backward
	y, dcol  []float32
	dx       []float32
}

func newConv2D(name string, in []int, oc, k, stride, pad int, b tensor.Backend) (*Conv2D, error) {
	g := tensor.ConvGeom{C: in[0], H: in[1], W: in[2], KH: k, KW: k, SH: stride, SW: stride, PH: pad, PW: pad}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return &Conv2D{
		layerBase: layerBase{name: name, in: in, out: []int{oc, g.OH(), g.OW()}, be: b},
		g:         g, oc: oc,
	}, nil
}

func (l *Conv2D) Params() []ParamSpec {
	fanIn := l.g.Rows()
	return []ParamSpec{
		{Name: l.name + ".weight", Shape: []int{l.oc, l.g.C, l.g.KH, l.g.KW}, Init: InitHe, FanIn: fanIn, FanOut: l.oc * l.g.KH * l.g.KW},
		{Name: l.name + ".bias", Shape: []int{l.oc}, Init: InitZero, FanIn: fanIn},
	}
}

func (l *Conv2D) Bind(v, g [][]float32) {
	l.w.bind(v[0], l.oc, l.g.Rows(), true)
	l.bias, l.dw, l.db = v[1], g[0], g[1]
}

func (l *Conv2D) changed() { l.w.valid = false }

func (l *Conv2D) Forward(x []float32, n int, train bool) []float32 {
	p := l.g.OH() * l.g.OW()
	l.y = grow(l.y, l.oc*n*p)
	var col []float32
	if train { // Backward needs the im2col matrix
		l.col = grow(l.col, l.g.Rows()*n*p)
		col = l.col
	}
	l.colValid = train
	l.be.Conv2D(l.g, n, x, l.w.forUse(&l.layerBase), l.bias, l.relu, l.y, col)
	return l.y
}

func (l *Conv2D) Backward(dy []float32, n int) []float32 {
	if !l.colValid {
		panic("nn: Conv2D.Backward after a Forward with train=false")
	}
	p := l.g.OH() * l.g.OW()
	np, rows := n*p, l.g.Rows()
	l.tmp = grow(l.tmp, l.oc*np)
	// dyᵀ (OC, n·P) from dy (n, OC, P)
	l.be.Transpose021(dy, l.tmp, n, l.oc, p)
	l.be.SumBias(l.tmp, l.db, 1, np)
	// dW (OC, rows) += dyᵀ (OC, n·P) · colᵀ (n·P, rows)
	l.be.Gemm(false, true, l.oc, rows, np, 1, l.tmp, np, l.col, np, 1, l.dw, rows)
	if !l.needInputGrad {
		return nil
	}
	// dcol (rows, n·P) = Wᵀ (rows, OC) · dyᵀ (OC, n·P)
	l.dcol = grow(l.dcol, rows*np)
	l.be.Gemm(true, false, rows, np, l.oc, 1, l.w.W, rows, l.tmp, np, 0, l.dcol, np)
	l.dx = grow(l.dx, n*prod(l.in))
	l.be.Col2Im(l.g, n, l.dcol, l.dx)
	return l.dx
}
