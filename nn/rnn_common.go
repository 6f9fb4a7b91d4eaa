package nn

import (
	"fmt"

	"github.com/maas-ml/maas/tensor"
)

// recurrent is what LSTM and GRU share: a stack of layers over a sequence
// x (n, T, F), PyTorch's parameters per stacked layer k
//
//	NAME.weight_ih_lk (G, in_k), NAME.weight_hh_lk (G, H),
//	NAME.bias_ih_lk (G), NAME.bias_hh_lk (G)
//
// with G = gates·H and in_0 = F, in_k = H above, and the time-major layout
// both compute in: a sequence is (T, n, ·), so that step t of the whole
// batch is one contiguous (n, ·) block. Forward transposes x to that layout
// once; every layer then projects all its inputs with one GEMM and runs one
// (n, H)·(H, G) GEMM per step. Backward collects the gate gradients dz of a
// layer over all steps and turns them into parameter gradients with one GEMM
// each (accumulate).
type recurrent struct {
	layerBase
	steps, feat, hidden int // T, F, H
	gates               int // G = gates per unit · H
	seq                 bool
	p                   []rnnParams // one per stacked layer

	xt []float32   // x as (T, n, F)
	hs [][]float32 // per layer: h_t at every step, (T, n, H)
	y  []float32   // (n, T, H) when seq
	dh []float32   // dL/dh of the layer being differentiated, (T, n, H)
	dt []float32   // dL/dx as (T, n, F)
	dx []float32   // dL/dx (n, T, F)
}

// rnnParams are one stacked layer's weights and their gradients.
type rnnParams struct {
	wih, whh               weights // (G, in_k), (G, H): right operands, transposed
	bih, bhh               []float32
	dwih, dwhh, dbih, dbhh []float32
}

func newRecurrent(name string, in []int, hidden, layers, gatesPerUnit int, seq bool, b tensor.Backend) recurrent {
	out := []int{hidden}
	if seq {
		out = []int{in[0], hidden}
	}
	return recurrent{
		layerBase: layerBase{name: name, in: in, out: out, be: b},
		steps:     in[0], feat: in[1], hidden: hidden, gates: gatesPerUnit * hidden, seq: seq,
		p: make([]rnnParams, layers), hs: make([][]float32, layers),
	}
}

// inSize is in_k, the input width of stacked layer k.
func (l *recurrent) inSize(k int) int {
	if k == 0 {
		return l.feat
	}
	return l.hidden
}

// Params lists weight_ih, weight_hh, bias_ih, bias_hh of every stacked
// layer, all drawn from PyTorch's U(−1/√H, 1/√H) (InitTorch with FanIn H).
func (l *recurrent) Params() []ParamSpec {
	ps := make([]ParamSpec, 0, 4*len(l.p))
	for k := range l.p {
		name := func(what string) string { return fmt.Sprintf("%s.%s_l%d", l.name, what, k) }
		init := func(what string, shape ...int) ParamSpec {
			return ParamSpec{Name: name(what), Shape: shape, Init: InitTorch, FanIn: l.hidden, FanOut: l.gates}
		}
		ps = append(ps,
			init("weight_ih", l.gates, l.inSize(k)), init("weight_hh", l.gates, l.hidden),
			init("bias_ih", l.gates), init("bias_hh", l.gates))
	}
	return ps
}

func (l *recurrent) changed() {
	for k := range l.p {
		l.p[k].wih.valid, l.p[k].whh.valid = false, false
	}
}

// recurrentWeights returns layer k's W_hh for the steps of one Forward:
// packed once for all of them (and kept in an inference model).
func (l *recurrent) recurrentWeights(k int) *tensor.Packed {
	p := &l.p[k]
	if l.frozen {
		return p.whh.forUse(&l.layerBase)
	}
	return p.whh.packNow(l.be)
}

func (l *recurrent) Bind(v, g [][]float32) {
	for k := range l.p {
		p := &l.p[k]
		p.wih.bind(v[4*k], l.gates, l.inSize(k), false)
		p.whh.bind(v[4*k+1], l.gates, l.hidden, false)
		p.bih, p.bhh = v[4*k+2], v[4*k+3]
		if g != nil {
			p.dwih, p.dwhh, p.dbih, p.dbhh = g[4*k], g[4*k+1], g[4*k+2], g[4*k+3]
		}
	}
}

// begin sizes the shared buffers for a batch of n and transposes x (n, T, F)
// into xt (T, n, F).
func (l *recurrent) begin(x []float32, n int) {
	tn := l.steps * n
	l.xt = grow(l.xt, tn*l.feat)
	l.be.Transpose021(x[:tn*l.feat], l.xt, n, l.steps, l.feat)
	for k := range l.hs {
		l.hs[k] = grow(l.hs[k], tn*l.hidden)
	}
}

// input is layer k's input sequence (T, n, in_k).
func (l *recurrent) input(k int) []float32 {
	if k == 0 {
		return l.xt
	}
	return l.hs[k-1]
}

// project writes a (T·n, G) = input(k) (T·n, in_k) · W_ihᵀ (in_k, G) + b_ih:
// the input half of every gate at every step, in one GEMM.
func (l *recurrent) project(k, n int, a []float32) {
	tn, in, p := l.steps*n, l.inSize(k), &l.p[k]
	l.be.GemmPacked(tn, 1, l.input(k), in, p.wih.forUse(&l.layerBase), 0, a, l.gates)
	l.be.AddBias(a, p.bih, tn, 1)
}

// output returns the top layer's h: the last step (n, H), or every step
// transposed back to (n, T, H).
func (l *recurrent) output(n int) []float32 {
	top, nh := l.hs[len(l.hs)-1], n*l.hidden
	if !l.seq {
		return top[(l.steps-1)*nh : l.steps*nh]
	}
	l.y = grow(l.y, l.steps*nh)
	l.be.Transpose021(top, l.y, l.steps, n, l.hidden)
	return l.y
}

// topGrad writes dL/dh of the top layer into dh (T, n, H) from dy.
func (l *recurrent) topGrad(dy []float32, n int) {
	nh := n * l.hidden
	l.dh = grow(l.dh, l.steps*nh)
	if l.seq {
		l.be.Transpose021(dy[:l.steps*nh], l.dh, n, l.steps, l.hidden)
		return
	}
	clear(l.dh[:(l.steps-1)*nh])
	copy(l.dh[(l.steps-1)*nh:], dy[:nh])
}

// accumulate adds layer k's parameter gradients from its gate gradients over
// all steps: dzi (T, n, G) with respect to the input half of the gates
// (x·W_ihᵀ + b_ih) and dzh (T, n, G) with respect to the hidden half
// (h_{t−1}·W_hhᵀ + b_hh); they are the same slice for an LSTM. It then
// writes dL/d input(k): into dh for the layer below, or into dx when k = 0
// and the input gradient is needed. It returns dx or nil.
func (l *recurrent) accumulate(k, n int, dzi, dzh []float32) []float32 {
	tn, in, g, h, p := l.steps*n, l.inSize(k), l.gates, l.hidden, &l.p[k]
	l.be.SumBias(dzi, p.dbih, tn, 1)
	l.be.SumBias(dzh, p.dbhh, tn, 1)
	// dW_ih (G, in) += dziᵀ (G, T·n) · input (T·n, in)
	l.be.Gemm(true, false, g, in, tn, 1, dzi, g, l.input(k), in, 1, p.dwih, in)
	// dW_hh (G, H) += dzh[1:]ᵀ (G, (T−1)·n) · h[:T−1] ((T−1)·n, H); h_{−1} = 0
	if l.steps > 1 {
		l.be.Gemm(true, false, g, h, tn-n, 1, dzh[n*g:], g, l.hs[k], h, 1, p.dwhh, h)
	}
	if k > 0 {
		// dh of layer k−1 (T·n, H) = dzi (T·n, G) · W_ih (G, H); dh of layer k is spent.
		l.be.Gemm(false, false, tn, h, g, 1, dzi, g, p.wih.W, h, 0, l.dh, h)
		return nil
	}
	if !l.needInputGrad {
		return nil
	}
	// dx (T·n, F) = dzi (T·n, G) · W_ih (G, F), then back to (n, T, F).
	l.dt = grow(l.dt, tn*l.feat)
	l.dx = grow(l.dx, tn*l.feat)
	l.be.Gemm(false, false, tn, l.feat, g, 1, dzi, g, p.wih.W, l.feat, 0, l.dt, l.feat)
	l.be.Transpose021(l.dt, l.dx, l.steps, n, l.feat)
	return l.dx
}
