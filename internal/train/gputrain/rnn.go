package gputrain

import (
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/tensor/cuda"
)

// rnnLayer is nn.LSTM or nn.GRU over x (n, T, F), in nn's time-major
// layout: x is transposed to xt (T, n, F) once, each stacked layer k
// projects its whole input with one GEMM (a (T·n, G) = input_k · W_ihᵀ +
// b_ih), then runs one (n, H)·(H, G) GEMM and one elementwise kernel per
// step. Backward runs back through time per layer into the gate
// gradients, which become the parameter gradients with one GEMM each.
type rnnLayer struct {
	gru                 bool
	steps, feat, hidden int // T, F, H
	gates               int // G: 4H (LSTM) or 3H (GRU)
	seq                 bool
	needDx              bool
	p                   []rnnParams // per stacked layer

	xt  uintptr   // x as (T, n, F)
	hs  []uintptr // per layer: h_t at every step, (T, n, H)
	act []uintptr // per layer: the gates at every step, (T, n, G)
	c   []uintptr // LSTM, per layer: c_t, (T, n, H)
	tc  []uintptr // LSTM, per layer: tanh(c_t), (T, n, H)
	hn  []uintptr // GRU, per layer: W_hn h_{t−1} + b_hn, (T, n, H)
	hh  uintptr   // GRU: h_{t−1}·W_hhᵀ + b_hh of one step, (n, G)
	y   uintptr   // (n, T, H) when seq
	dh  uintptr   // dL/dh of the layer being differentiated, (T, n, H)
	dzi uintptr   // gate gradients, input half (the only ones for an LSTM), (T, n, G)
	dzh uintptr   // GRU: gate gradients, hidden half, (T, n, G)
	dc  uintptr   // LSTM: dL/dc carried back one step, (n, H)
	dt  uintptr   // dL/dx as (T, n, F)
	dx  uintptr   // dL/dx (n, T, F)
}

// rnnParams are one stacked layer's parameter offsets: weight_ih (G, in_k),
// weight_hh (G, H), bias_ih (G), bias_hh (G).
type rnnParams struct{ wih, whh, bih, bhh param }

func newRNNLayer(s nn.LayerSpec, in []int, need bool, next func() param) *rnnLayer {
	l := &rnnLayer{gru: s.Type == "gru", steps: in[0], feat: in[1], hidden: s.Units, seq: s.ReturnSequences, needDx: need}
	l.gates = 4 * l.hidden
	if l.gru {
		l.gates = 3 * l.hidden
	}
	l.p = make([]rnnParams, max(s.NumLayers, 1))
	for k := range l.p {
		l.p[k] = rnnParams{wih: next(), whh: next(), bih: next(), bhh: next()}
	}
	return l
}

// lay takes the layer's buffers for batches of up to batch samples.
func (l *rnnLayer) lay(lay *layout, batch int) {
	tn := l.steps * batch
	nl := len(l.p)
	l.hs, l.act = make([]uintptr, nl), make([]uintptr, nl)
	lay.take(&l.xt, 4*tn*l.feat)
	for k := range nl {
		lay.take(&l.hs[k], 4*tn*l.hidden)
		lay.take(&l.act[k], 4*tn*l.gates)
	}
	if l.gru {
		l.hn = make([]uintptr, nl)
		for k := range nl {
			lay.take(&l.hn[k], 4*tn*l.hidden)
		}
		lay.take(&l.hh, 4*batch*l.gates)
		lay.take(&l.dzh, 4*tn*l.gates)
	} else {
		l.c, l.tc = make([]uintptr, nl), make([]uintptr, nl)
		for k := range nl {
			lay.take(&l.c[k], 4*tn*l.hidden)
			lay.take(&l.tc[k], 4*tn*l.hidden)
		}
		lay.take(&l.dc, 4*batch*l.hidden)
	}
	if l.seq {
		lay.take(&l.y, 4*tn*l.hidden)
	}
	lay.take(&l.dh, 4*tn*l.hidden)
	lay.take(&l.dzi, 4*tn*l.gates)
	if l.needDx {
		lay.take(&l.dt, 4*tn*l.feat)
		lay.take(&l.dx, 4*tn*l.feat)
	}
}

func (l *rnnLayer) inSize(k int) int {
	if k == 0 {
		return l.feat
	}
	return l.hidden
}

func (l *rnnLayer) input(k int) uintptr {
	if k == 0 {
		return l.xt
	}
	return l.hs[k-1]
}

// at is the address of block t of an array of (n·width)-float blocks.
func at(base uintptr, t, n, width int) uintptr { return base + 4*uintptr(t*n*width) }

func (l *rnnLayer) forward(q *cuda.Queue, t *Trainer, x uintptr, n int) uintptr {
	tn, h, g := l.steps*n, l.hidden, l.gates
	q.Transpose021(x, l.xt, n, l.steps, l.feat)
	for k := range l.p {
		p, in, act := l.p[k], l.inSize(k), l.act[k]
		// act (T·n, G) = input (T·n, in) · W_ihᵀ + b_ih
		q.Gemm(false, true, tn, g, in, 1, l.input(k), in, t.p(p.wih), in, 0, act, g)
		q.AddBias(act, t.p(p.bih), tn, g, 1)
		if !l.gru { // b_hh joins b_ih: both add to every gate
			q.AddBias(act, t.p(p.bhh), tn, g, 1)
		}
		for s := range l.steps {
			a, hs := at(act, s, n, g), at(l.hs[k], s, n, h)
			var hprev uintptr
			if s > 0 {
				hprev = at(l.hs[k], s-1, n, h)
			}
			if l.gru {
				// hh (n, G) = b_hh + h_{t−1}·W_hhᵀ
				q.Fill(l.hh, n*g, 0)
				q.AddBias(l.hh, t.p(p.bhh), n, g, 1)
				if s > 0 {
					q.Gemm(false, true, n, g, h, 1, hprev, h, t.p(p.whh), h, 1, l.hh, g)
				}
				q.GRUForward(a, l.hh, hprev, at(l.hn[k], s, n, h), hs, n, h)
				continue
			}
			var cprev uintptr
			if s > 0 {
				// a (n, 4H) += h_{t−1} · W_hhᵀ
				q.Gemm(false, true, n, g, h, 1, hprev, h, t.p(p.whh), h, 1, a, g)
				cprev = at(l.c[k], s-1, n, h)
			}
			q.LSTMForward(a, cprev, at(l.c[k], s, n, h), at(l.tc[k], s, n, h), hs, n, h)
		}
	}
	top := l.hs[len(l.hs)-1]
	if !l.seq {
		return at(top, l.steps-1, n, h)
	}
	q.Transpose021(top, l.y, l.steps, n, h)
	return l.y
}

func (l *rnnLayer) backward(q *cuda.Queue, t *Trainer, dy uintptr, n int) uintptr {
	tn, h := l.steps*n, l.hidden
	// dh (T, n, H) from dy: every step's, or only the last one's.
	if l.seq {
		q.Transpose021(dy, l.dh, n, l.steps, h)
	} else {
		q.Fill(l.dh, tn*h, 0)
		q.Axpy(1, dy, at(l.dh, l.steps-1, n, h), n*h)
	}
	var dx uintptr
	for k := len(l.p) - 1; k >= 0; k-- {
		l.backwardLayer(q, t, k, n)
		dx = l.accumulate(q, t, k, n)
	}
	return dx
}

// backwardLayer runs back through time over stacked layer k: from dh it
// writes the gate gradients, adding each step's gradient with respect to
// h_{t−1} into dh_{t−1} on the way.
func (l *rnnLayer) backwardLayer(q *cuda.Queue, t *Trainer, k, n int) {
	h, g, p := l.hidden, l.gates, l.p[k]
	if !l.gru {
		q.Fill(l.dc, n*h, 0)
	}
	for s := l.steps - 1; s >= 0; s-- {
		a, dh := at(l.act[k], s, n, g), at(l.dh, s, n, h)
		var hprev, dprev uintptr
		if s > 0 {
			hprev, dprev = at(l.hs[k], s-1, n, h), at(l.dh, s-1, n, h)
		}
		dzi, dzh := at(l.dzi, s, n, g), at(l.dzi, s, n, g)
		if l.gru {
			dzh = at(l.dzh, s, n, g)
			q.GRUBackward(a, at(l.hn[k], s, n, h), hprev, dh, dprev, dzi, dzh, n, h)
		} else {
			var cprev uintptr
			if s > 0 {
				cprev = at(l.c[k], s-1, n, h)
			}
			q.LSTMBackward(a, at(l.tc[k], s, n, h), cprev, dh, l.dc, dzi, n, h)
		}
		if s > 0 {
			// dh_{t−1} (n, H) += dzh_t (n, G) · W_hh (G, H)
			q.Gemm(false, false, n, h, g, 1, dzh, g, t.p(p.whh), h, 1, dprev, h)
		}
	}
}

// accumulate adds layer k's parameter gradients from its gate gradients
// over all steps, then writes dL/d input(k): into dh for the layer below,
// or into dx for k = 0 when needed. It returns dx or 0.
func (l *rnnLayer) accumulate(q *cuda.Queue, t *Trainer, k, n int) uintptr {
	tn, in, g, h, p := l.steps*n, l.inSize(k), l.gates, l.hidden, l.p[k]
	dzi, dzh := l.dzi, l.dzi
	if l.gru {
		dzh = l.dzh
	}
	q.SumBias(dzi, t.g(p.bih), tn, g, 1)
	q.SumBias(dzh, t.g(p.bhh), tn, g, 1)
	// dW_ih (G, in) += dziᵀ (G, T·n) · input (T·n, in)
	q.Gemm(true, false, g, in, tn, 1, dzi, g, l.input(k), in, 1, t.g(p.wih), in)
	// dW_hh (G, H) += dzh[1:]ᵀ (G, (T−1)·n) · h[:T−1] ((T−1)·n, H)
	if l.steps > 1 {
		q.Gemm(true, false, g, h, tn-n, 1, at(dzh, 1, n, g), g, l.hs[k], h, 1, t.g(p.whh), h)
	}
	if k > 0 {
		// dh of layer k−1 (T·n, H) = dzi (T·n, G) · W_ih (G, H)
		q.Gemm(false, false, tn, h, g, 1, dzi, g, t.p(p.wih), h, 0, l.dh, h)
		return 0
	}
	if !l.needDx {
		return 0
	}
	// dx (T·n, F) = dzi · W_ih, then back to (n, T, F).
	q.Gemm(false, false, tn, l.feat, g, 1, dzi, g, t.p(p.wih), l.feat, 0, l.dt, l.feat)
	q.Transpose021(l.dt, l.dx, l.steps, n, l.feat)
	return l.dx
}
