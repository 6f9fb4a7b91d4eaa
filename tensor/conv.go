package tensor

import "sync"

// The convolution forward pass computes each image's output straight into
// y (n, OC, P) as one GEMM, y_i = W · col_i, with W packed once per call
// (or once for good, for a model that serves) and shared by every core. The
// output tile starts as the bias and ReLU runs on it while it is still in
// cache, so nothing is transposed and no extra pass goes over the whole
// batch. The GEMM packs its panels straight from the (zero-padded) image:
// no im2col matrix is written, in training either (the backward pass reads
// the input again, see conv_backward.go).

// convScratch is a reusable buffer, grown on demand and kept in a free list.
type convScratch struct {
	buf []float32
	idx []int32
}

func (s *convScratch) takeIdx(n int) []int32 {
	if cap(s.idx) < n {
		s.idx = make([]int32, n)
	}
	return s.idx[:n]
}

// implicitCol is the im2col matrix of one image, read in place: with xp
// the image zero-padded to (C, H+2·PH, W+2·PW),
//
//	Im2Col[r, j] = xp[rowOff[r] + colOff[j]]
//
// so the GEMM packs its panels straight from the image, and no im2col
// matrix is written or read.
type implicitCol struct {
	xp             []float32
	rowOff, colOff []int32
}

// implicitOffsets fills rowOff (Rows) and colOff (OH·OW) for g.
func implicitOffsets(g ConvGeom, rowOff, colOff []int32) {
	hp, wp := g.H+2*g.PH, g.W+2*g.PW
	for r := range rowOff {
		c, kh, kw := r/(g.KH*g.KW), r/g.KW%g.KH, r%g.KW
		rowOff[r] = int32((c*hp+kh)*wp + kw)
	}
	ow := g.OW()
	for j := range colOff {
		colOff[j] = int32(j/ow*g.SH*wp + j%ow*g.SW)
	}
}

// padImage writes x (C, H, W) into xp (C, H+2·PH, W+2·PW) with a zero border.
func padImage(g ConvGeom, x, xp []float32) {
	hp, wp := g.H+2*g.PH, g.W+2*g.PW
	for c := 0; c < g.C; c++ {
		plane := xp[c*hp*wp : (c+1)*hp*wp]
		clear(plane[:g.PH*wp])
		for y := 0; y < g.H; y++ {
			row := plane[(y+g.PH)*wp : (y+g.PH+1)*wp]
			clear(row[:g.PW])
			copy(row[g.PW:], x[(c*g.H+y)*g.W:(c*g.H+y+1)*g.W])
			clear(row[g.PW+g.W:])
		}
		clear(plane[(g.H+g.PH)*wp:])
	}
}

// packBImplicit is packB for the implicit im2col matrix of an image. Full
// 16-column panels use the AVX2 gather where there is one.
func packBImplicit(nr int, ic *implicitCol, pc, jc, kb, nb int, dst []float32) {
	rowOff := ic.rowOff[pc : pc+kb]
	if kb == 0 {
		return
	}
	// Every offset must stay inside the padded image: gather16 does not
	// check. rowOff and colOff are increasing, so the last ones are largest.
	_ = ic.xp[int(ic.rowOff[len(ic.rowOff)-1])+int(ic.colOff[len(ic.colOff)-1])]
	for q := 0; q < nb; q += nr {
		panel := dst[q*kb : (q+nr)*kb]
		cols := min(nr, nb-q)
		co := ic.colOff[jc+q : jc+q+cols]
		if hasGather16 && nr == 16 && cols == 16 {
			gather16(&panel[0], &ic.xp[0], &rowOff[0], kb, &co[0])
			continue
		}
		if cols < nr {
			clear(panel)
		}
		for p, ro := range rowOff {
			src, d := ic.xp[ro:], panel[p*nr:p*nr+cols]
			for j, o := range co {
				d[j] = src[o]
			}
		}
	}
}

func (s *convScratch) take(n int) []float32 {
	if cap(s.buf) < n {
		s.buf = make([]float32, n)
	}
	return s.buf[:n]
}

// convFwdArgs carries one Conv2D call across the pool. Its work is
// n·chunks units: image i, column chunk c of that image's P outputs.
// y_i = W · col_i, with W (oc, rows) packed.
type convFwdArgs struct {
	geom          ConvGeom
	n, oc         int
	x, bias, y    []float32
	relu          bool
	w             operand   // W as the left operand, packed
	padded        []float32 // with chunks > 1: every image padded
	rowOff        []int32   // implicitCol offsets
	colOff        []int32
	chunks, parts int
	kern          *microKernel
	bufs          freeList[gemmBuffers]
	scratch       freeList[convScratch]
	wg            sync.WaitGroup
}

func (a *convFwdArgs) run(part int) {
	g := a.geom
	p, rows := g.OH()*g.OW(), g.Rows()
	lo, hi := split(a.n*a.chunks, a.parts, 1, part)
	if lo == hi {
		return
	}
	buf := a.bufs.get()
	defer a.bufs.put(buf)
	var own *convScratch
	if a.padded == nil && (g.PH > 0 || g.PW > 0) {
		own = a.scratch.get()
		defer a.scratch.put(own)
	}
	imageSize, paddedSize := g.C*g.H*g.W, g.C*(g.H+2*g.PH)*(g.W+2*g.PW)
	for u := lo; u < hi; u++ {
		i, c := u/a.chunks, u%a.chunks
		c0, c1 := split(p, a.chunks, a.kern.nr, c)
		if c0 == c1 {
			continue
		}
		b := operand{}
		switch {
		case a.padded != nil: // padded up front, shared by the chunks
			buf.ic = implicitCol{xp: a.padded[i*paddedSize : (i+1)*paddedSize], rowOff: a.rowOff, colOff: a.colOff}
			b.implicit = &buf.ic
			b.off = c0
		case own != nil:
			xp := own.take(paddedSize)
			padImage(g, a.x[i*imageSize:(i+1)*imageSize], xp)
			buf.ic = implicitCol{xp: xp, rowOff: a.rowOff, colOff: a.colOff}
			b.implicit = &buf.ic
			b.off = c0
		default: // no padding: the image is its own padded copy
			buf.ic = implicitCol{xp: a.x[i*imageSize : (i+1)*imageSize], rowOff: a.rowOff, colOff: a.colOff}
			b.implicit = &buf.ic
			b.off = c0
		}
		yi := a.y[i*a.oc*p:]
		for o := 0; o < a.oc; o++ {
			row := yi[o*p+c0 : o*p+c1]
			bv := float32(0)
			if a.bias != nil {
				bv = a.bias[o]
			}
			for j := range row {
				row[j] = bv
			}
		}
		gemmAcc(a.kern, a.w, b, a.oc, c1-c0, rows, 1, yi[c0:], p, buf)
		if a.relu {
			for o := 0; o < a.oc; o++ {
				row := yi[o*p+c0 : o*p+c1]
				relu(row, row)
			}
		}
	}
}

func (g *GoBackend) Conv2D(geom ConvGeom, n int, x []float32, w *Packed, bias []float32, relu bool, y []float32) {
	oc := w.Rows
	if n <= 0 || oc <= 0 {
		return
	}
	p, rows := geom.OH()*geom.OW(), geom.Rows()
	kern := g.kern
	a := g.pool.convFwd.get()
	*a = convFwdArgs{geom: geom, n: n, oc: oc, x: x, bias: bias, y: y[:n*oc*p], relu: relu,
		kern: kern, bufs: g.pool.gemmBufs, scratch: g.pool.scratch}
	// Work units: whole images when there are enough for every core, else
	// column chunks of each image.
	threads := g.pool.threads
	if 2*n*oc*p*rows < gemmMinParallel {
		threads = 1
	}
	a.chunks = 1
	if n < threads {
		a.chunks = min((threads+n-1)/n, (p+kern.nr-1)/kern.nr)
	}
	a.parts = min(threads, n*a.chunks)
	// The GEMM reads the images in place (implicitCol); when cores share an
	// image it is padded here, once.
	shared := g.pool.scratch.get()
	offs := shared.takeIdx(rows + p)
	a.rowOff, a.colOff = offs[:rows], offs[rows:]
	implicitOffsets(geom, a.rowOff, a.colOff)
	if a.chunks > 1 && (geom.PH > 0 || geom.PW > 0) {
		size := geom.C * (geom.H + 2*geom.PH) * (geom.W + 2*geom.PW)
		a.padded = shared.take(n * size)
		for i := 0; i < n; i++ {
			padImage(geom, x[i*geom.C*geom.H*geom.W:], a.padded[i*size:(i+1)*size])
		}
	}
	// W is packed once for every image and core.
	var pw *convScratch
	a.w = operand{packed: w.panels(kern, true, oc, rows), pad: roundUp(oc, kern.mr)}
	if a.w.packed == nil {
		pw = g.pool.scratch.get()
		a.w.packed = pw.take(roundUp(oc, kern.mr) * rows)
		packAll(kern.mr, false, w.W, rows, oc, rows, a.w.packed)
	}
	g.pool.run(a, a.parts, &a.wg)
	if pw != nil {
		g.pool.scratch.put(pw)
	}
	g.pool.scratch.put(shared)
	*a = convFwdArgs{}
	g.pool.convFwd.put(a)
}
