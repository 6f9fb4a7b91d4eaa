package nn

// StepHooks let a data-parallel worker overlap its communication with a
// step: the gradients of the last layers are final (and can be pushed)
// while backward still runs through the first ones, and the next forward
// can start on the first layers' parameters while the rest are arriving.
type StepHooks struct {
	// ParamsNeeded, when set, is called by Forward before each layer with
	// parameters, with the end of that layer's part of Params: the layer
	// reads Params[:hi] (every earlier layer's as well). It returns when
	// they are in place.
	ParamsNeeded func(hi int)
	// GradsReady, when set, is called by Backward after each layer with
	// parameters, with the start of that layer's part of Grads:
	// Grads[lo:] holds its final values for this backward.
	GradsReady func(lo int)
}

// SetHooks installs h (nil removes the hooks).
func (m *Model) SetHooks(h *StepHooks) { m.hooks = h }

// LayerSpan is the part of the flat vector layer i's parameters occupy
// (lo == hi for a layer without parameters).
func (m *Model) LayerSpan(i int) (lo, hi int) { return m.spans[i][0], m.spans[i][1] }

// LayerCosts estimates each layer's share of a training step's
// arithmetic, for emulating a step layer by layer: multiply-adds of its
// forward pass for layers with weights (a convolution's weights at every
// output position, a recurrent layer's at every time step), one per output
// element for the others. The values are relative; backward costs about
// twice forward for each.
func (m *Model) LayerCosts() []float64 {
	costs := make([]float64, len(m.Layers))
	for i, l := range m.Layers {
		lo, hi := m.LayerSpan(i)
		out := float64(prod(l.OutShape()))
		w := float64(hi - lo)
		switch l.(type) {
		case *Conv2D:
			s := l.OutShape()
			costs[i] = w * float64(s[1]*s[2])
		case *LSTM, *GRU:
			costs[i] = w * float64(l.InShape()[0])
		case *Dense:
			costs[i] = w
		default:
			costs[i] = out
		}
	}
	return costs
}
