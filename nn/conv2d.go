package nn

import "github.com/maas-ml/maas/tensor"

// Conv2D is a 2-D convolution with bias: x (n, C, H, W) → y (n, OC, OH, OW),
// weight (OC, C, KH, KW), bias (OC). The backend computes the forward pass
// (one GEMM per image, bias and a fused ReLU applied in cache); in training
// it keeps a reference to its input x, from which Backward computes the
// gradients image by image (Conv2DBackward). x is the previous layer's
// output (or the batch), which stays unchanged until this layer's Backward.
type Conv2D struct {
	layerBase
	g      tensor.ConvGeom
	oc     int
	w      weights   // (OC, C·KH·KW), left operand
	bias   []float32 // (OC)
	dw, db []float32
	// relu applies max(·, 0) to the output: the following ReLU layer is
	// fused into this one (see fuseLayers).
	relu    bool
	x       []float32 // the last training input
	trained bool
	y, dx   []float32
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
	l.x, l.trained = nil, train
	if train { // Backward reads the input again
		l.x = x[:n*prod(l.in)]
	}
	l.be.Conv2D(l.g, n, x, l.w.forUse(&l.layerBase), l.bias, l.relu, l.y)
	return l.y
}

func (l *Conv2D) Backward(dy []float32, n int) []float32 {
	if !l.trained {
		panic("nn: Conv2D.Backward after a Forward with train=false")
	}
	var dx []float32
	if l.needInputGrad {
		l.dx = grow(l.dx, n*prod(l.in))
		dx = l.dx
	}
	if l.inputGradOnly {
		l.be.Conv2DBackward(l.g, n, l.x, l.w.W, dy, nil, nil, dx)
		return dx
	}
	l.be.Conv2DBackward(l.g, n, l.x, l.w.W, dy, l.dw, l.db, dx)
	return dx
}
