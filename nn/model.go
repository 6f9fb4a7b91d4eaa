package nn

import (
	"fmt"

	"github.com/maas-ml/maas/tensor"
)

// Model is a sequence of layers whose parameters live in one flat vector.
type Model struct {
	Spec   ModelSpec
	Layers []Layer
	// Params is θ, every parameter in order; Grads has the same layout.
	Params []float32
	Grads  []float32
	// Views names the tensors inside Params, in order.
	Views []ParamView

	backend tensor.Backend
	spans   [][2]int // each layer's part of the flat vector
	hooks   *StepHooks
}

// ParamView is one named parameter tensor: Params[Offset : Offset+Size].
type ParamView struct {
	Name   string
	Shape  []int
	Offset int
	Size   int
	spec   ParamSpec
}

// Build makes a model from spec on backend b, with zeroed parameters; call
// Init to initialise them. Errors name the spec field at fault and wrap
// ErrSpec.
func Build(spec ModelSpec, b tensor.Backend) (*Model, error) { return build(spec, b, true, true) }

// BuildInference makes a model for inference only: no gradient vector, and
// Backward must not be called. Forward with train=false.
func BuildInference(spec ModelSpec, b tensor.Backend) (*Model, error) {
	return build(spec, b, false, true)
}

// buildUnfused makes a model with gradients whose layers are each their
// own (no ReLU fused into the layer before or after it), so that every
// layer's output is the spec's.
func buildUnfused(spec ModelSpec, b tensor.Backend) (*Model, error) {
	return build(spec, b, true, false)
}

func build(spec ModelSpec, b tensor.Backend, grads, fuse bool) (*Model, error) {
	plans, err := spec.shapes()
	if err != nil {
		return nil, err
	}
	m := &Model{Spec: spec, backend: b}
	for i, p := range plans {
		l, err := newLayer(p, b)
		if err != nil {
			return nil, specErr(fmt.Sprintf("model.layers[%d]", i), "%v", err)
		}
		m.Layers = append(m.Layers, l)
	}
	if fuse {
		fuseLayers(m.Layers)
	}
	if !grads {
		for _, l := range m.Layers {
			if b, ok := l.(interface{ base() *layerBase }); ok {
				b.base().frozen = true
			}
		}
	}
	// The last layer with weights is the output layer: Glorot, not He.
	for i := len(m.Layers) - 1; i >= 0; i-- {
		if d, ok := m.Layers[i].(*Dense); ok {
			d.fanInit = InitGlorot
			break
		}
		if len(m.Layers[i].Params()) > 0 {
			break
		}
	}
	// Only layers after the first one with parameters need an input gradient.
	need := false
	for _, l := range m.Layers {
		setNeedInputGrad(l, need)
		if len(l.Params()) > 0 {
			need = true
		}
	}
	// Lay out the flat vector.
	n := 0
	for _, l := range m.Layers {
		lo := n
		for _, ps := range l.Params() {
			if spec.Init == InitTorch && ps.Init != InitNormal { // embeddings are N(0, 1) in PyTorch too
				ps.Init = InitTorch
			}
			size := prod(ps.Shape)
			m.Views = append(m.Views, ParamView{Name: ps.Name, Shape: ps.Shape, Offset: n, Size: size, spec: ps})
			n += size
		}
		m.spans = append(m.spans, [2]int{lo, n})
	}
	m.Params = make([]float32, n)
	if grads {
		m.Grads = make([]float32, n)
	}
	v := 0
	for _, l := range m.Layers {
		ps := l.Params()
		vals, gs := make([][]float32, len(ps)), make([][]float32, len(ps))
		for j := range ps {
			view := m.Views[v]
			vals[j] = m.Params[view.Offset : view.Offset+view.Size : view.Offset+view.Size]
			if grads {
				gs[j] = m.Grads[view.Offset : view.Offset+view.Size : view.Offset+view.Size]
			}
			v++
		}
		l.Bind(vals, gs)
	}
	return m, nil
}

func newLayer(p layerPlan, b tensor.Backend) (Layer, error) {
	s := p.spec
	switch s.Type {
	case "conv2d":
		stride := max(s.Stride, 1)
		return newConv2D(p.name, p.in, s.Filters, s.Kernel, stride, s.Padding, b)
	case "maxpool2d":
		stride := s.Stride
		if stride == 0 {
			stride = s.Kernel
		}
		return newMaxPool2D(p.name, p.in, s.Kernel, stride, b)
	case "dense":
		return newDense(p.name, p.in, s.Units, b), nil
	case "relu":
		return newReLU(p.name, p.in, b), nil
	case "flatten":
		return newFlatten(p.name, p.in, b), nil
	case "dropout":
		return newDropout(p.name, p.in, s.Rate, 0, b), nil
	case "lstm":
		return newLSTM(p.name, p.in, s.Units, max(s.NumLayers, 1), s.ReturnSequences, b), nil
	case "gru":
		return newGRU(p.name, p.in, s.Units, max(s.NumLayers, 1), s.ReturnSequences, b), nil
	case "embedding":
		return newEmbedding(p.name, p.in, s.Vocab, s.Units, b), nil
	}
	return nil, fmt.Errorf("unknown layer type %q", s.Type)
}

// fuseLayers lets a convolution apply the ReLU that follows it while its
// output is in cache, and a max-pool apply the backward mask of the ReLU
// before it to its own, 4x smaller, output gradient (the pooled maximum
// is the ReLU output at the position the gradient goes to, so the masks
// agree). The results are bit-identical to the separate layers.
func fuseLayers(layers []Layer) {
	for i := 0; i+1 < len(layers); i++ {
		if c, ok := layers[i].(*Conv2D); ok {
			if r, ok := layers[i+1].(*ReLU); ok {
				c.relu, r.fused = true, true
			}
		}
		if r, ok := layers[i].(*ReLU); ok {
			if p, ok := layers[i+1].(*MaxPool2D); ok {
				p.maskPositive, r.passBack = true, true
			}
		}
	}
}

func setNeedInputGrad(l Layer, need bool) {
	type baser interface{ base() *layerBase }
	if b, ok := l.(baser); ok {
		b.base().needInputGrad = need
	}
}

func (l *layerBase) base() *layerBase { return l }

// Init initialises every parameter from seed (see ParamSpec.Init) and
// reseeds the dropout layers; the same seed gives the same model.
func (m *Model) Init(seed uint64) {
	rng := splitMix(seed)
	for _, v := range m.Views {
		initParam(m.Params[v.Offset:v.Offset+v.Size], v.spec, &rng)
	}
	m.WeightsChanged()
	for i, l := range m.Layers {
		if d, ok := l.(*Dropout); ok {
			d.rng = splitMix(seed ^ uint64(i+1)*0x9e3779b97f4a7c15)
		}
	}
}

// WeightsChanged drops the packed layouts of the weights; a model for
// inference packs them again on its next Forward. Whoever writes Params
// other than through SetWeights and Init must call it.
func (m *Model) WeightsChanged() {
	for _, l := range m.Layers {
		if p, ok := l.(packer); ok {
			p.changed()
		}
	}
}

// Backend returns the backend the model computes on.
func (m *Model) Backend() tensor.Backend { return m.backend }

// InShape and OutShape are the per-sample input and output shapes.
func (m *Model) InShape() []int  { return m.Spec.Input }
func (m *Model) OutShape() []int { return m.Layers[len(m.Layers)-1].OutShape() }

// Forward runs a batch x (n, Input...) through the model and returns the
// output (n, OutShape...), a buffer valid until the next Forward.
func (m *Model) Forward(x []float32, n int, train bool) []float32 {
	for i, l := range m.Layers {
		if lo, hi := m.LayerSpan(i); m.hooks != nil && m.hooks.ParamsNeeded != nil && hi > lo {
			m.hooks.ParamsNeeded(hi)
		}
		x = l.Forward(x, n, train)
	}
	return x
}

// Backward propagates dL/dy of the last Forward and adds each parameter's
// gradient into Grads.
func (m *Model) Backward(dy []float32, n int) {
	for i := len(m.Layers) - 1; i >= 0 && dy != nil; i-- {
		dy = m.Layers[i].Backward(dy, n)
		if lo, hi := m.LayerSpan(i); m.hooks != nil && m.hooks.GradsReady != nil && hi > lo {
			m.hooks.GradsReady(lo)
		}
	}
}

// ZeroGrad sets every gradient to zero.
func (m *Model) ZeroGrad() { clear(m.Grads) }

// View returns the named parameter tensor.
func (m *Model) View(name string) (ParamView, bool) {
	for _, v := range m.Views {
		if v.Name == name {
			return v, true
		}
	}
	return ParamView{}, false
}

// Param returns the values of the named parameter tensor (a view into
// Params), or nil.
func (m *Model) Param(name string) []float32 {
	if v, ok := m.View(name); ok {
		return m.Params[v.Offset : v.Offset+v.Size]
	}
	return nil
}

// Grad returns the gradient of the named parameter tensor, or nil.
func (m *Model) Grad(name string) []float32 {
	if v, ok := m.View(name); ok {
		return m.Grads[v.Offset : v.Offset+v.Size]
	}
	return nil
}
