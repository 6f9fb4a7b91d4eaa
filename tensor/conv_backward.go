package tensor

import "sync"

// The convolution backward pass works image by image, as the forward
// pass: with dy_i (OC, P) and col_i (C·KH·KW, P) both contiguous, the
// weight gradient is a sum of per-image GEMMs, dw += dy_i · col_iᵀ, and the
// input gradient is dcol_i = Wᵀ · dy_i folded back at once by Col2Im while
// dcol_i is in cache. Each core takes a run of images with its own dw and
// db accumulators, summed at the end; nothing is transposed and no
// batch-sized dcol is written.

// convBwdArgs carries one Conv2DBackward call across the pool.
type convBwdArgs struct {
	geom             ConvGeom
	n, oc, parts     int
	dy, col, dx      []float32
	wt               operand     // Wᵀ (rows, OC), packed once
	partial          [][]float32 // per part: its dw then db accumulators
	kern             *microKernel
	bufs             freeList[gemmBuffers]
	scratch          freeList[convScratch]
	wg               sync.WaitGroup
	scratches        []*convScratch
	dwLen, dbLen, dc int
}

func (a *convBwdArgs) run(part int) {
	g := a.geom
	p, rows := g.OH()*g.OW(), g.Rows()
	lo, hi := split(a.n, a.parts, 1, part)
	buf := a.bufs.get()
	defer a.bufs.put(buf)
	s := a.scratches[part].take(a.dwLen + a.dbLen + a.dc)
	clear(s[:a.dwLen+a.dbLen])
	dw, db, dcol := s[:a.dwLen], s[a.dwLen:a.dwLen+a.dbLen], s[a.dwLen+a.dbLen:]
	a.partial[part] = s[:a.dwLen+a.dbLen]
	size := g.C * g.H * g.W
	for i := lo; i < hi; i++ {
		dyi, coli := a.dy[i*a.oc*p:(i+1)*a.oc*p], a.col[i*rows*p:(i+1)*rows*p]
		// dw (OC, rows) += dy_i (OC, P) · col_iᵀ (P, rows)
		gemmAcc(a.kern, operand{m: dyi, ld: p}, operand{m: coli, ld: p, trans: true}, a.oc, rows, p, 1, dw, rows, buf)
		for o := range a.oc {
			db[o] += sum32(dyi[o*p : (o+1)*p])
		}
		if a.dx != nil {
			// dcol_i (rows, P) = Wᵀ (rows, OC) · dy_i (OC, P), folded into dx_i
			clear(dcol)
			gemmAcc(a.kern, a.wt, operand{m: dyi, ld: p}, rows, p, a.oc, 1, dcol, p, buf)
			col2imPlanes(g, 1, dcol, a.dx[i*size:(i+1)*size], 0, g.C)
		}
	}
}

func (g *GoBackend) Conv2DBackward(geom ConvGeom, n int, w, dy, col, dw, db, dx []float32) {
	rows := geom.Rows()
	oc := len(w) / rows
	if n <= 0 || oc <= 0 {
		return
	}
	p := geom.OH() * geom.OW()
	kern := g.kern
	a := g.pool.convBwd.get()
	partial, scratches := a.partial[:0], a.scratches[:0] // kept from an earlier call
	*a = convBwdArgs{geom: geom, n: n, oc: oc, dy: dy, col: col, dx: dx, kern: kern,
		bufs: g.pool.gemmBufs, scratch: g.pool.scratch, dwLen: oc * rows, dbLen: oc}
	a.parts = min(g.pool.threads, n)
	if 2*n*oc*p*rows < gemmMinParallel {
		a.parts = 1
	}
	var wt *convScratch
	if dx != nil {
		a.dc = rows * p
		wt = g.pool.scratch.get()
		packed := wt.take(roundUp(rows, kern.mr) * oc)
		packAll(kern.mr, true, w, rows, rows, oc, packed)
		a.wt = operand{packed: packed, pad: roundUp(rows, kern.mr)}
	}
	for range a.parts {
		partial, scratches = append(partial, nil), append(scratches, g.pool.scratch.get())
	}
	a.partial, a.scratches = partial, scratches
	g.pool.run(a, a.parts, &a.wg)
	for part, s := range a.partial {
		addTo(dw, s[:a.dwLen])
		addTo(db, s[a.dwLen:])
		g.pool.scratch.put(a.scratches[part])
		a.partial[part], a.scratches[part] = nil, nil
	}
	if wt != nil {
		g.pool.scratch.put(wt)
	}
	partial, scratches = a.partial, a.scratches
	*a = convBwdArgs{partial: partial, scratches: scratches}
	g.pool.convBwd.put(a)
}

// addTo adds src to dst element-wise.
func addTo(dst, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] += v
	}
}
