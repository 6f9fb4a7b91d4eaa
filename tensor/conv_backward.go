package tensor

import "sync/atomic"

// The convolution backward pass works image by image, as the forward
// pass, or on runs of a few images side by side where one image's outputs
// would fill the micro-kernel's panels poorly (convGroup; the run's dy is
// rearranged to (OC, images·P) first). With dy (OC, P) contiguous, the
// weight gradient is a sum of GEMMs, dw += dy · colᵀ, with col = Im2Col(x)
// unfolded by the core that uses it, into a buffer that stays in its cache
// (the batch's im2col is never written: the forward pass reads the images
// in place). The same buffer then takes dcol = Wᵀ · dy, folded back by
// Col2Im while it is in cache. (Packing colᵀ straight from the image with
// gathers, as the forward pass packs col, was measured slower: the 16
// values of a transposed panel row lie in as many image rows.) Each core
// takes the next chunk of runs as it gets free, so that a core slowed down
// by other work on the machine does less of it; every chunk has its own dw
// and db accumulators, summed in chunk order at the end, so the result does
// not depend on which core took which chunk.

// convBwdArgs carries one Conv2DBackward call across the pool.
type convBwdArgs struct {
	geom         ConvGeom
	n, oc, parts int
	group        int  // images taken side by side (see convGroup)
	dwT          bool // the weight gradient is computed transposed (see tileUse)
	dxOnly       bool // dw and db are nil: the input gradient only
	x, dy, dx    []float32
	wt           operand        // Wᵀ (rows, OC), packed once
	chunks       int            // runs of images cut into this many chunks
	next         atomic.Int32   // the next chunk to take
	acc          []float32      // per chunk: its dw (or dwᵀ) then db accumulators
	scratches    []*convScratch // per part: col, dcol and dy rearranged
	kern         *microKernel
	bufs         freeList[gemmBuffers]
	wg           partsLeft
}

func (a *convBwdArgs) run(part int) {
	g := a.geom
	p, rows := g.OH()*g.OW(), g.Rows()
	buf := a.bufs.get()
	defer a.bufs.put(buf)
	dwLen, cols := a.oc*rows, a.group*p
	need := rows * cols
	if a.group > 1 {
		need += a.oc * cols
	}
	s := a.scratches[part].take(need)
	col := s[:rows*cols] // col, then dcol, of a run of images
	dyt := s[rows*cols:] // the run's dy as (OC, images·P)
	for {
		c := int(a.next.Add(1)) - 1
		if c >= a.chunks {
			return
		}
		lo, hi := split((a.n+a.group-1)/a.group, a.chunks, 1, c)
		if a.dxOnly {
			a.runs(lo, hi, nil, nil, col, dyt, buf)
			continue
		}
		acc := a.acc[c*(dwLen+a.oc) : (c+1)*(dwLen+a.oc)]
		clear(acc)
		a.runs(lo, hi, acc[:dwLen], acc[dwLen:], col, dyt, buf)
	}
}

// runs adds the gradients of the runs of images [lo, hi) to dw and db and
// writes their dx.
func (a *convBwdArgs) runs(lo, hi int, dw, db, col, dyt []float32, buf *gemmBuffers) {
	g := a.geom
	p, rows := g.OH()*g.OW(), g.Rows()
	size := g.C * g.H * g.W
	for u := lo; u < hi; u++ {
		i0 := u * a.group
		gs := min(a.group, a.n-i0)
		w := gs * p
		dyg := a.dy[i0*a.oc*p : (i0+gs)*a.oc*p]
		if gs > 1 {
			transpose021(dyg, dyt, gs, a.oc, p, 0, gs)
			dyg = dyt[:a.oc*w]
		}
		if !a.dxOnly {
			xg := a.x[i0*size : (i0+gs)*size]
			// dw (OC, rows) += dy (OC, w) · colᵀ (w, rows), col unfolded
			// here, into this core's cache
			im2colRows(g, gs, xg, col, 0, rows)
			if a.dwT { // dwᵀ (rows, OC) += col (rows, w) · dyᵀ (w, OC)
				gemmAcc(a.kern, operand{m: col, ld: w}, operand{m: dyg, ld: w, trans: true}, rows, a.oc, w, 1, dw, a.oc, buf)
			} else {
				gemmAcc(a.kern, operand{m: dyg, ld: w}, operand{m: col, ld: w, trans: true}, a.oc, rows, w, 1, dw, rows, buf)
			}
			for o := range a.oc {
				db[o] += sum32(dyg[o*w : (o+1)*w])
			}
		}
		if a.dx != nil {
			// dcol (rows, w) = Wᵀ (rows, OC) · dy (OC, w), folded into dx
			clear(col[:rows*w])
			gemmAcc(a.kern, a.wt, operand{m: dyg, ld: w}, rows, w, a.oc, 1, col, w, buf)
			col2imPlanes(g, gs, col, a.dx[i0*size:(i0+gs)*size], 0, gs*g.C, true)
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
	scratches := a.scratches[:0] // kept from an earlier call
	dxOnly := dw == nil && db == nil
	if dxOnly && dx == nil {
		return
	}
	*a = convBwdArgs{geom: geom, n: n, oc: oc, x: x, dy: dy, dx: dx, dxOnly: dxOnly, kern: kern, bufs: g.pool.gemmBufs}
	threads := g.pool.threads
	if 2*n*oc*p*rows < gemmMinParallel {
		threads = 1
	}
	a.group = convGroup(p, kern.nr, n, threads)
	a.dwT = tileUse(kern, rows, oc) >= tileUse(kern, oc, rows)
	a.parts = min(threads, (n+a.group-1)/a.group)
	shared := g.pool.scratch.get()
	if dx != nil {
		packed := shared.take(roundUp(rows, kern.mr) * oc)
		packAll(kern.mr, true, w, rows, rows, oc, packed)
		a.wt = operand{packed: packed, pad: roundUp(rows, kern.mr)}
	}
	// Four chunks a core: enough for the cores to even out, few enough
	// that summing the accumulators stays small.
	a.chunks = min((n+a.group-1)/a.group, 4*a.parts)
	if a.parts == 1 {
		a.chunks = 1
	}
	accLen := oc*rows + oc
	accs := g.pool.scratch.get()
	if !dxOnly {
		a.acc = accs.take(a.chunks * accLen)
	}
	for range a.parts {
		scratches = append(scratches, g.pool.scratch.get())
	}
	a.scratches = scratches
	g.pool.run(a, a.parts, &a.wg)
	if !dxOnly {
		sum := a.acc[:accLen]
		for c := 1; c < a.chunks; c++ {
			addTo(sum, a.acc[c*accLen:(c+1)*accLen])
		}
		if a.dwT {
			for r := range rows {
				for o, v := range sum[r*oc : (r+1)*oc] {
					dw[o*rows+r] += v
				}
			}
		} else {
			addTo(dw, sum[:oc*rows])
		}
		addTo(db, sum[oc*rows:])
	}
	for part := range a.scratches {
		g.pool.scratch.put(a.scratches[part])
		a.scratches[part] = nil
	}
	g.pool.scratch.put(accs)
	g.pool.scratch.put(shared)
	scratches = a.scratches
	*a = convBwdArgs{scratches: scratches}
	g.pool.convBwd.put(a)
}

// tileUse is the fraction of the micro-kernel's tiles that an m×n product
// fills. The weight gradient is computed transposed, dwᵀ = col · dyᵀ,
// unless that fills fewer tiles: a first layer's OC × C·KH·KW (32 × 9 for
// one input channel) uses 9 of each tile's 16 columns, its transpose 3/4
// of the tiles; and the operand packed transposed is then dy (OC rows)
// instead of col (C·KH·KW rows, 4.5 times as many in the seed CNN's
// conv2 and conv3), col being packed as it lies.
func tileUse(kern *microKernel, m, n int) float64 {
	return float64(m*n) / float64(roundUp(m, kern.mr)*roundUp(n, kern.nr))
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
