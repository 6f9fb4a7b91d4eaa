package nn

import "github.com/maas-ml/maas/tensor"

// MaxPool2D takes the maximum over k×k windows: x (n, C, H, W) →
// y (n, C, OH, OW). It records where each maximum came from, and Backward
// routes each gradient there.
type MaxPool2D struct {
	layerBase
	g     tensor.PoolGeom
	y, dx []float32
	idx   []int32
	// idxValid: the last Forward was a training one and recorded idx.
	idxValid bool
	// maskPositive: the layer before is a ReLU whose backward mask this
	// layer applies, to dy where its output is positive (see fuseLayers).
	maskPositive bool
	dym          []float32 // dy masked
}

func newMaxPool2D(name string, in []int, k, stride int, b tensor.Backend) (*MaxPool2D, error) {
	g := tensor.PoolGeom{H: in[1], W: in[2], KH: k, KW: k, SH: stride, SW: stride}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return &MaxPool2D{layerBase: layerBase{name: name, in: in, out: []int{in[0], g.OH(), g.OW()}, be: b}, g: g}, nil
}

func (l *MaxPool2D) Forward(x []float32, n int, train bool) []float32 {
	out := n * prod(l.out)
	l.y = grow(l.y, out)
	var idx []int32
	l.idxValid = train
	if train { // only Backward needs where each maximum came from
		l.idx = growInt32(l.idx, out)
		idx = l.idx
	}
	l.be.MaxPool(l.g, n*l.in[0], x, l.y, idx)
	return l.y
}

func (l *MaxPool2D) Backward(dy []float32, n int) []float32 {
	if !l.needInputGrad {
		return nil
	}
	if !l.idxValid {
		panic("nn: MaxPool2D.Backward after a Forward with train=false")
	}
	l.dx = grow(l.dx, n*prod(l.in))
	if l.maskPositive {
		l.dym = grow(l.dym, len(l.y))
		l.be.ReluBackward(dy[:len(l.y)], l.y, l.dym)
		dy = l.dym
	}
	l.be.MaxPoolBackward(l.g, n*l.in[0], dy, l.idx, l.dx)
	return l.dx
}
