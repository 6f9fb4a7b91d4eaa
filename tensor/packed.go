package tensor

// Packed is a weight matrix W (Rows, K), row-major, with the layout a
// backend's products read it in, so that repeated products with an
// unchanged W (the time steps of a recurrent layer, the requests a served
// model answers) lay it out once. Fill W, Rows, K and Left, then call
// Backend.Pack; after W changes, call Pack again before the next product.
//
// Left selects the use: W as the left operand of Conv2D (Rows = output
// channels), or else Wᵀ as the right operand of GemmPacked.
type Packed struct {
	W       []float32
	Rows, K int
	Left    bool

	data []float32    // the backend's layout of W, or nil
	kern *microKernel // the micro-kernel data was laid out for
}

// panels returns p's packed data when it was laid out for kern and fits
// its shape, else nil (the product then packs W itself).
func (p *Packed) panels(kern *microKernel, left bool, rows, k int) []float32 {
	if p == nil || p.kern != kern || p.Left != left || p.Rows != rows || p.K != k {
		return nil
	}
	return p.data
}

// Pack lays out p.W for this backend's micro-kernel, reusing p's memory.
func (g *GoBackend) Pack(p *Packed) {
	if p.Left {
		n := roundUp(p.Rows, g.kern.mr) * p.K
		p.data = growFloats(p.data, n)
		packAll(g.kern.mr, false, p.W, p.K, p.Rows, p.K, p.data)
	} else { // op(B) = Wᵀ (K, Rows): W is B stored transposed
		n := roundUp(p.Rows, g.kern.nr) * p.K
		p.data = growFloats(p.data, n)
		packAllB(g.kern.nr, true, p.W, p.K, p.K, p.Rows, p.data)
	}
	p.kern = g.kern
}

// GemmPacked computes C = alpha·A·Wᵀ + beta·C: see Backend.GemmPacked.
func (g *GoBackend) GemmPacked(m int, alpha float32, a []float32, lda int, w *Packed, beta float32, c []float32, ldc int) {
	b := operand{m: w.W, ld: w.K, trans: true}
	if d := w.panels(g.kern, false, w.Rows, w.K); d != nil {
		b.packed, b.pad = d, roundUp(w.Rows, g.kern.nr)
	}
	g.pool.gemmOps(g.kern, m, w.Rows, w.K, alpha, operand{m: a, ld: lda}, b, beta, c, ldc)
}

func growFloats(buf []float32, n int) []float32 {
	if cap(buf) < n {
		return make([]float32, n)
	}
	return buf[:n]
}
