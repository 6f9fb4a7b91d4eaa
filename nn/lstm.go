package nn

import "github.com/maas-ml/maas/tensor"

// LSTM is PyTorch's nn.LSTM (batch_first, h0 = c0 = 0) over x (n, T, F):
// num_layers stacked layers of H units whose output is the top layer's last
// h (n, H), or every h (n, T, H) with return_sequences. Per step, with the
// gates in PyTorch's order i, f, g, o along the 4H rows of the weights,
//
//	i = σ(W_ii x + b_ii + W_hi h + b_hi)    f = σ(W_if x + b_if + W_hf h + b_hf)
//	g = tanh(W_ig x + b_ig + W_hg h + b_hg) o = σ(W_io x + b_io + W_ho h + b_ho)
//	c' = f ⊙ c + i ⊙ g                      h' = o ⊙ tanh(c')
//
// See recurrent for the parameters and the layout.
type LSTM struct {
	recurrent
	act [][]float32 // per layer: i, f, g, o at every step, (T, n, 4H)
	c   [][]float32 // per layer: c_t, (T, n, H)
	tc  [][]float32 // per layer: tanh(c_t), (T, n, H)
	dz  []float32   // gate gradients before the nonlinearity, (T, n, 4H)
	dc  []float32   // dL/dc_t carried back one step, (n, H)
}

func newLSTM(name string, in []int, hidden, layers int, seq bool, b tensor.Backend) *LSTM {
	return &LSTM{
		recurrent: newRecurrent(name, in, hidden, layers, 4, seq, b),
		act:       make([][]float32, layers), c: make([][]float32, layers), tc: make([][]float32, layers),
	}
}

func (l *LSTM) Forward(x []float32, n int, train bool) []float32 {
	l.begin(x, n)
	tn := l.steps * n
	for k := range l.p {
		l.act[k] = grow(l.act[k], tn*l.gates)
		l.c[k] = grow(l.c[k], tn*l.hidden)
		l.tc[k] = grow(l.tc[k], tn*l.hidden)
		l.forwardLayer(k, n)
	}
	return l.output(n)
}

// forwardLayer runs stacked layer k over all steps.
func (l *LSTM) forwardLayer(k, n int) {
	h, g, p := l.hidden, l.gates, &l.p[k]
	nh, ng := n*h, n*g
	act := l.act[k]
	l.project(k, n, act)
	l.be.AddBias(act, p.bhh, l.steps*n, 1) // b_hh joins b_ih: both add to every gate
	whh := l.recurrentWeights(k)
	for t := range l.steps {
		a := act[t*ng : (t+1)*ng]
		if t > 0 {
			// a (n, 4H) += h_{t−1} (n, H) · W_hhᵀ (H, 4H)
			l.be.GemmPacked(n, 1, l.hs[k][(t-1)*nh:t*nh], h, whh, 1, a, g)
		}
		c, tc, hs := l.c[k][t*nh:(t+1)*nh], l.tc[k][t*nh:(t+1)*nh], l.hs[k][t*nh:(t+1)*nh]
		for i := range n {
			row := a[i*g : (i+1)*g]
			// i, f (σ), g (tanh), o (σ), each H wide, in place
			l.be.Sigmoid(row[:2*h], row[:2*h])
			l.be.Tanh(row[2*h:3*h], row[2*h:3*h])
			l.be.Sigmoid(row[3*h:], row[3*h:])
			ci := c[i*h : (i+1)*h]
			for j := range h {
				cv := row[j] * row[2*h+j]
				if t > 0 {
					cv += row[h+j] * l.c[k][(t-1)*nh+i*h+j]
				}
				ci[j] = cv
			}
			tci := tc[i*h : (i+1)*h]
			l.be.Tanh(ci, tci)
			for j, v := range tci {
				hs[i*h+j] = row[3*h+j] * v
			}
		}
	}
}

func (l *LSTM) Backward(dy []float32, n int) []float32 {
	l.topGrad(dy, n)
	l.dz = grow(l.dz, l.steps*n*l.gates)
	l.dc = grow(l.dc, n*l.hidden)
	var dx []float32
	for k := len(l.p) - 1; k >= 0; k-- {
		l.backwardLayer(k, n)
		dx = l.accumulate(k, n, l.dz, l.dz)
	}
	return dx
}

// backwardLayer runs back through time over stacked layer k: from dh (T, n,
// H), dL/dh_t from above, it writes the gate gradients dz (T, n, 4H), adding
// each step's recurrent gradient dz_t · W_hh into dh_{t−1} on the way.
func (l *LSTM) backwardLayer(k, n int) {
	h, g, p := l.hidden, l.gates, &l.p[k]
	nh, ng := n*h, n*g
	clear(l.dc)
	for t := l.steps - 1; t >= 0; t-- {
		a, dz := l.act[k][t*ng:(t+1)*ng], l.dz[t*ng:(t+1)*ng]
		dh, tc := l.dh[t*nh:(t+1)*nh], l.tc[k][t*nh:(t+1)*nh]
		for i := range n {
			row, drow := a[i*g:(i+1)*g], dz[i*g:(i+1)*g]
			for j := range h {
				ig, fg, gg, og := row[j], row[h+j], row[2*h+j], row[3*h+j]
				d, tcv := dh[i*h+j], tc[i*h+j]
				// h = o ⊙ tanh(c); c = f ⊙ c_{t−1} + i ⊙ g; dc also flows back from step t+1.
				dc := d*og*(1-tcv*tcv) + l.dc[i*h+j]
				var cprev float32
				if t > 0 {
					cprev = l.c[k][(t-1)*nh+i*h+j]
				}
				drow[j] = dc * gg * ig * (1 - ig)
				drow[h+j] = dc * cprev * fg * (1 - fg)
				drow[2*h+j] = dc * ig * (1 - gg*gg)
				drow[3*h+j] = d * tcv * og * (1 - og)
				l.dc[i*h+j] = dc * fg
			}
		}
		if t > 0 {
			// dh_{t−1} (n, H) += dz_t (n, 4H) · W_hh (4H, H)
			l.be.Gemm(false, false, n, h, g, 1, dz, g, p.whh.W, h, 1, l.dh[(t-1)*nh:t*nh], h)
		}
	}
}
