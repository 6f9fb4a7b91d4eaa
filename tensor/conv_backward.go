package tensor

import "sync"

// The convolution backward pass works image by image, as the forward
// pass. With dy_i (OC, P) contiguous, the weight gradient is a sum of
// per-image GEMMs, dw += dy_i · col_iᵀ, with col_i = Im2Col(x_i) unfolded
// by the core that uses it, into a buffer that stays in its cache (the
// batch's im2col is never written: the forward pass reads the images in
// place). The same buffer then takes dcol_i = Wᵀ · dy_i, folded back by
// Col2Im while it is in cache. (Packing col_iᵀ straight from the image
// with gathers, as the forward pass packs col_i, was measured slower: the
// 16 values of a transposed panel row lie in as many image rows.) Each
// core takes a run of images with its own dw and db accumulators, summed at
// the end; nothing is transposed.

// convBwdArgs carries one Conv2DBackward call across the pool.
type convBwdArgs struct {
	geom         ConvGeom
	n, oc, parts int
	x, dy, dx    []float32
	wt           operand     // Wᵀ (rows, OC), packed once
	partial      [][]float32 // per part: its dw then db accumulators
	scratches    []*convScratch
	kern         *microKernel
	bufs         freeList[gemmBuffers]
	wg           sync.WaitGroup
}

func (a *convBwdArgs) run(part int) {
	g := a.geom
	p, rows := g.OH()*g.OW(), g.Rows()
	lo, hi := split(a.n, a.parts, 1, part)
	buf := a.bufs.get()
	defer a.bufs.put(buf)
	dwLen := a.oc * rows
	s := a.scratches[part].take(dwLen + a.oc + rows*p)
	clear(s[:dwLen+a.oc])
	dw, db := s[:dwLen], s[dwLen:dwLen+a.oc]
	col := s[dwLen+a.oc:] // col_i, then dcol_i
	a.partial[part] = s[:dwLen+a.oc]
	size := g.C * g.H * g.W
	for i := lo; i < hi; i++ {
		dyi := a.dy[i*a.oc*p : (i+1)*a.oc*p]
		// dw (OC, rows) += dy_i (OC, P) · col_iᵀ (P, rows), col_i unfolded
		// here, into this core's cache
		im2colRows(g, 1, a.x[i*size:(i+1)*size], col, 0, rows)
		gemmAcc(a.kern, operand{m: dyi, ld: p}, operand{m: col, ld: p, trans: true}, a.oc, rows, p, 1, dw, rows, buf)
		for o := range a.oc {
			db[o] += sum32(dyi[o*p : (o+1)*p])
		}
		if a.dx != nil {
			// dcol_i (rows, P) = Wᵀ (rows, OC) · dy_i (OC, P), folded into dx_i
			clear(col)
			gemmAcc(a.kern, a.wt, operand{m: dyi, ld: p}, rows, p, a.oc, 1, col, p, buf)
			col2imPlanes(g, 1, col, a.dx[i*size:(i+1)*size], 0, g.C, true)
		}
	}
}

func (g *GoBackend) Conv2DBackward(geom ConvGeom, n int, x, w, dy, dw, db, dx []float32) {
	rows := geom.Rows()
	oc := len(w) / rows
	if n <= 0 || oc <= 0 {
		return
	}
	p := geom.OH() * geom.OW()
	kern := g.kern
	a := g.pool.convBwd.get()
	partial, scratches := a.partial[:0], a.scratches[:0] // kept from an earlier call
	*a = convBwdArgs{geom: geom, n: n, oc: oc, x: x, dy: dy, dx: dx, kern: kern, bufs: g.pool.gemmBufs}
	a.parts = min(g.pool.threads, n)
	if 2*n*oc*p*rows < gemmMinParallel {
		a.parts = 1
	}
	shared := g.pool.scratch.get()
	if dx != nil {
		packed := shared.take(roundUp(rows, kern.mr) * oc)
		packAll(kern.mr, true, w, rows, rows, oc, packed)
		a.wt = operand{packed: packed, pad: roundUp(rows, kern.mr)}
	}
	for range a.parts {
		partial, scratches = append(partial, nil), append(scratches, g.pool.scratch.get())
	}
	a.partial, a.scratches = partial, scratches
	g.pool.run(a, a.parts, &a.wg)
	for part, s := range a.partial {
		addTo(dw, s[:oc*rows])
		addTo(db, s[oc*rows:])
		g.pool.scratch.put(a.scratches[part])
		a.partial[part], a.scratches[part] = nil, nil
	}
	g.pool.scratch.put(shared)
	partial, scratches = a.partial, a.scratches
	*a = convBwdArgs{partial: partial, scratches: scratches}
	g.pool.convBwd.put(a)
}

// addTo adds src to dst element-wise:
//
//	for i := range src { dst[i] += src[i] }
func addTo(dst, src []float32) {
	n := len(src)
	if n == 0 {
		return
	}
	dst = dst[:n]
	if hasAVX2FMA {
		addAVX(&dst[0], &src[0], n, &tailMask[8-n%8])
		return
	}
	for i, v := range src {
		dst[i] += v
	}
}
