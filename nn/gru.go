package nn

import "github.com/maas-ml/maas/tensor"

// GRU is PyTorch's nn.GRU (batch_first, h0 = 0) over x (n, T, F): num_layers
// stacked layers of H units whose output is the top layer's last h (n, H),
// or every h (n, T, H) with return_sequences. Per step, with the gates in
// PyTorch's order r, z, n along the 3H rows of the weights,
//
//	r = σ(W_ir x + b_ir + W_hr h + b_hr)
//	z = σ(W_iz x + b_iz + W_hz h + b_hz)
//	n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
//	h' = (1 − z) ⊙ n + z ⊙ h
//
// See recurrent for the parameters and the layout.
type GRU struct {
	recurrent
	act [][]float32 // per layer: the input half, then r, z, n at every step, (T, n, 3H)
	hn  [][]float32 // per layer: W_hn h_{t−1} + b_hn at every step, (T, n, H)
	hh  []float32   // h_{t−1}·W_hhᵀ + b_hh of one step, (n, 3H)
	dzi []float32   // gradients of the input half of the gates, (T, n, 3H)
	dzh []float32   // gradients of the hidden half of the gates, (T, n, 3H)
}

func newGRU(name string, in []int, hidden, layers int, seq bool, b tensor.Backend) *GRU {
	return &GRU{
		recurrent: newRecurrent(name, in, hidden, layers, 3, seq, b),
		act:       make([][]float32, layers), hn: make([][]float32, layers),
	}
}

func (l *GRU) Forward(x []float32, n int, train bool) []float32 {
	l.begin(x, n)
	tn := l.steps * n
	l.hh = grow(l.hh, n*l.gates)
	for k := range l.p {
		l.act[k] = grow(l.act[k], tn*l.gates)
		l.hn[k] = grow(l.hn[k], tn*l.hidden)
		l.forwardLayer(k, n)
	}
	return l.output(n)
}

// forwardLayer runs stacked layer k over all steps.
func (l *GRU) forwardLayer(k, n int) {
	h, g, p := l.hidden, l.gates, &l.p[k]
	nh, ng := n*h, n*g
	act := l.act[k]
	l.project(k, n, act)
	whh := l.recurrentWeights(k)
	for t := range l.steps {
		a := act[t*ng : (t+1)*ng]
		for i := range n {
			copy(l.hh[i*g:(i+1)*g], p.bhh)
		}
		var hprev []float32
		if t > 0 {
			hprev = l.hs[k][(t-1)*nh : t*nh]
			// hh (n, 3H) += h_{t−1} (n, H) · W_hhᵀ (H, 3H)
			l.be.GemmPacked(n, 1, hprev, h, whh, 1, l.hh, g)
		}
		hn, hs := l.hn[k][t*nh:(t+1)*nh], l.hs[k][t*nh:(t+1)*nh]
		for i := range n {
			row, hrow := a[i*g:(i+1)*g], l.hh[i*g:(i+1)*g]
			// r, z = σ(x-part + h-part), in place
			for j := range 2 * h {
				row[j] += hrow[j]
			}
			l.be.Sigmoid(row[:2*h], row[:2*h])
			// n = tanh(x-part + r ⊙ h-part)
			for j := range h {
				row[2*h+j] += row[j] * hrow[2*h+j]
			}
			l.be.Tanh(row[2*h:], row[2*h:])
			for j := range h {
				z, nv := row[h+j], row[2*h+j]
				hn[i*h+j] = hrow[2*h+j]
				hv := (1 - z) * nv
				if t > 0 {
					hv += z * hprev[i*h+j]
				}
				hs[i*h+j] = hv
			}
		}
	}
}

func (l *GRU) Backward(dy []float32, n int) []float32 {
	l.topGrad(dy, n)
	l.dzi = grow(l.dzi, l.steps*n*l.gates)
	l.dzh = grow(l.dzh, l.steps*n*l.gates)
	var dx []float32
	for k := len(l.p) - 1; k >= 0; k-- {
		l.backwardLayer(k, n)
		dx = l.accumulate(k, n, l.dzi, l.dzh)
	}
	return dx
}

// backwardLayer runs back through time over stacked layer k: from dh (T, n,
// H), dL/dh_t from above, it writes the gate gradients dzi and dzh (T, n,
// 3H), adding each step's gradient with respect to h_{t−1}, z ⊙ dh +
// dzh_t · W_hh, into dh_{t−1} on the way.
func (l *GRU) backwardLayer(k, n int) {
	h, g, p := l.hidden, l.gates, &l.p[k]
	nh, ng := n*h, n*g
	for t := l.steps - 1; t >= 0; t-- {
		a, dzi, dzh := l.act[k][t*ng:(t+1)*ng], l.dzi[t*ng:(t+1)*ng], l.dzh[t*ng:(t+1)*ng]
		dh, hn := l.dh[t*nh:(t+1)*nh], l.hn[k][t*nh:(t+1)*nh]
		var hprev, dprev []float32
		if t > 0 {
			hprev, dprev = l.hs[k][(t-1)*nh:t*nh], l.dh[(t-1)*nh:t*nh]
		}
		for i := range n {
			row, irow, hrow := a[i*g:(i+1)*g], dzi[i*g:(i+1)*g], dzh[i*g:(i+1)*g]
			for j := range h {
				r, z, nv := row[j], row[h+j], row[2*h+j]
				d := dh[i*h+j]
				var hp float32
				if t > 0 {
					hp = hprev[i*h+j]
					dprev[i*h+j] += d * z
				}
				// h' = (1 − z) ⊙ n + z ⊙ h; n = tanh(x_n + r ⊙ hn)
				dn := d * (1 - z) * (1 - nv*nv)
				dz := d * (hp - nv) * z * (1 - z)
				dr := dn * hn[i*h+j] * r * (1 - r)
				irow[j], irow[h+j], irow[2*h+j] = dr, dz, dn
				hrow[j], hrow[h+j], hrow[2*h+j] = dr, dz, dn*r
			}
		}
		if t > 0 {
			// dh_{t−1} (n, H) += dzh_t (n, 3H) · W_hh (3H, H)
			l.be.Gemm(false, false, n, h, g, 1, dzh, g, p.whh.W, h, 1, dprev, h)
		}
	}
}
