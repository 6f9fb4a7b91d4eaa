package tensor

import "sync/atomic"

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
//
// A shifted-plane convolution (flatShift, see shiftPanels) is read another
// way: masks is set, xp is the image itself (not padded), and
//
//	Im2Col[r, j] = masks[j/16·taps·16 + rowMask[r] + j%16] ? xp[rowOff[r] + j] : 0
type implicitCol struct {
	xp             []float32
	rowOff, colOff []int32
	rowMask, masks []int32
	taps           int
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

// shiftPanels sets up the shifted-plane reading of implicitCol for a
// flatShift geometry: rowOff[r] = c·H·W + s for row r = (c, tap) and tap
// shift s, rowMask[r] = tap·16, and masks (panels of 16 output columns ×
// taps × 16) marking the columns of each panel that each tap reads inside
// the image (the rest, and the columns past the last output, are 0). A
// panel row is then two masked vector loads, where the gathers of the
// padded image took sixteen separate reads.
func shiftPanels(g ConvGeom, rowOff, rowMask, masks []int32) {
	var tab [maxShiftTaps]shiftRow
	shifts := shiftTable(g, &tab)
	taps, hw := len(shifts), g.H*g.W
	for r := range rowOff {
		t := r % taps
		rowOff[r] = int32(r/taps*hw + shifts[t].s)
		rowMask[r] = int32(t * 16)
	}
	p, panels := g.OH()*g.OW(), len(masks)/(taps*16)
	for t := range shifts {
		sr := &shifts[t]
		y, x := 0, 0 // of output column j
		for j := 0; j < panels*16; j++ {
			in := j < p && y >= sr.y0 && y < sr.y1 && (x < sr.zlo || x >= sr.zlo+sr.zn)
			k := (j/16*taps+t)*16 + j%16
			masks[k] = 0
			if in {
				masks[k] = -1
			}
			if x++; x == g.W {
				x, y = 0, y+1
			}
		}
	}
}

// fill sets every value of s to v.
func fill(s []float32, v float32) {
	if hasAVX2FMA && len(s) >= 8 {
		n := len(s) &^ 7
		fillAVX(&s[0], n, v)
		s = s[n:]
	}
	for i := range s {
		s[i] = v
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
	if ic.masks != nil { // nr is 16, jc a multiple of 16
		rowMask := ic.rowMask[pc : pc+kb]
		for q := 0; q < nb; q += nr {
			m := ic.masks[(jc+q)/16*ic.taps*16:]
			_ = m[ic.taps*16-1]
			packShift16(&dst[q*kb], &ic.xp[0], &rowOff[0], &rowMask[0], &m[0], kb, jc+q)
		}
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
// n·chunks units, taken by the cores in turn as they get free: image i,
// column chunk c of that image's P outputs,
// y_i = W · col_i, with W (oc, rows) packed; or, with group > 1, runs of
// group images side by side in one GEMM (see convGroup).
type convFwdArgs struct {
	geom          ConvGeom
	n, oc         int
	x, bias, y    []float32
	relu          bool
	w             operand   // W as the left operand, packed
	padded        []float32 // with chunks > 1: every image padded
	rowOff        []int32   // implicitCol offsets
	colOff        []int32
	rowMask       []int32 // with masks: the shifted-plane reading (shiftPanels)
	masks         []int32
	chunks, parts int
	group         int          // images a GEMM takes side by side
	next          atomic.Int32 // the next unit to take: each core takes units as it gets free
	kern          *microKernel
	bufs          freeList[gemmBuffers]
	scratch       freeList[convScratch]
	wg            partsLeft
}

func (a *convFwdArgs) run(part int) {
	if a.group > 1 {
		a.runGroups(part)
		return
	}
	g := a.geom
	p, rows := g.OH()*g.OW(), g.Rows()
	units := a.n * a.chunks
	buf := a.bufs.get()
	defer a.bufs.put(buf)
	var own *convScratch
	if a.padded == nil && a.masks == nil && (g.PH > 0 || g.PW > 0) {
		own = a.scratch.get()
		defer a.scratch.put(own)
	}
	imageSize, paddedSize := g.C*g.H*g.W, g.C*(g.H+2*g.PH)*(g.W+2*g.PW)
	for {
		u := int(a.next.Add(1)) - 1
		if u >= units {
			break
		}
		i, c := u/a.chunks, u%a.chunks
		c0, c1 := split(p, a.chunks, a.kern.nr, c)
		if c0 == c1 {
			continue
		}
		b := operand{}
		switch {
		case a.masks != nil: // the image as it is, read at shifts
			buf.ic = implicitCol{xp: a.x[i*imageSize : (i+1)*imageSize], rowOff: a.rowOff, rowMask: a.rowMask,
				masks: a.masks, taps: g.KH * g.KW}
			b.implicit = &buf.ic
			b.off = c0
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
			bv := float32(0)
			if a.bias != nil {
				bv = a.bias[o]
			}
			fill(yi[o*p+c0:o*p+c1], bv)
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

// convGroup returns how many images one forward GEMM should take side by
// side. The micro-kernel works on panels of nr output columns, so an image
// with few outputs leaves part of its last panel idle: 49 outputs (the
// seed CNN's 7×7 layer) fill 4 panels of 16 to 77%; four images side by
// side, 196 columns, fill 13 panels to 94%. It is the fewest images (at
// most 512 columns, and enough runs for every core) whose panels are at
// least 93% full, or 1.
func convGroup(p, nr, n, threads int) int {
	full := func(cols int) bool { return 100*cols >= 93*roundUp(cols, nr) }
	if full(p) {
		return 1
	}
	for g := 2; g*p <= 512 && g*threads <= n; g++ {
		if full(g * p) {
			return g
		}
	}
	return 1
}

// runGroups is run for group > 1: unit u is the images [u·group,
// (u+1)·group), whose implicit im2col matrices lie side by side (colOff
// holds group images' columns), computed into a scratch C (oc, group·P)
// that starts as the bias and is copied out image by image, through the
// ReLU.
func (a *convFwdArgs) runGroups(part int) {
	g := a.geom
	p, rows := g.OH()*g.OW(), g.Rows()
	units := (a.n + a.group - 1) / a.group
	buf := a.bufs.get()
	defer a.bufs.put(buf)
	s := a.scratch.get()
	defer a.scratch.put(s)
	imageSize, paddedSize := g.C*g.H*g.W, g.C*(g.H+2*g.PH)*(g.W+2*g.PW)
	padded := g.PH > 0 || g.PW > 0
	cols := a.group * p
	need := a.oc * cols
	if padded {
		need += a.group * paddedSize
	}
	t := s.take(need)
	c, xp := t[:a.oc*cols], t[a.oc*cols:]
	for {
		u := int(a.next.Add(1)) - 1
		if u >= units {
			break
		}
		i0 := u * a.group
		gs := min(a.group, a.n-i0)
		w := gs * p
		if padded {
			for k := range gs {
				padImage(g, a.x[(i0+k)*imageSize:(i0+k+1)*imageSize], xp[k*paddedSize:(k+1)*paddedSize])
			}
			buf.ic = implicitCol{xp: xp[:gs*paddedSize], rowOff: a.rowOff, colOff: a.colOff[:w]}
		} else {
			buf.ic = implicitCol{xp: a.x[i0*imageSize : (i0+gs)*imageSize], rowOff: a.rowOff, colOff: a.colOff[:w]}
		}
		for o := 0; o < a.oc; o++ {
			bv := float32(0)
			if a.bias != nil {
				bv = a.bias[o]
			}
			fill(c[o*w:(o+1)*w], bv)
		}
		gemmAcc(a.kern, a.w, operand{implicit: &buf.ic}, a.oc, w, rows, 1, c, w, buf)
		for k := range gs {
			yi := a.y[(i0+k)*a.oc*p : (i0+k+1)*a.oc*p]
			for o := 0; o < a.oc; o++ {
				dst := yi[o*p : (o+1)*p]
				copy(dst, c[o*w+k*p:o*w+(k+1)*p])
				if a.relu {
					relu(dst, dst)
				}
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
	a.chunks, a.group = 1, convGroup(p, kern.nr, n, threads)
	if n < threads {
		a.chunks = min((threads+n-1)/n, (p+kern.nr-1)/kern.nr)
	}
	a.parts = min(threads, n*a.chunks)
	if a.group > 1 {
		a.parts = min(threads, (n+a.group-1)/a.group)
	}
	// The GEMM reads the images in place (implicitCol); when cores share an
	// image it is padded here, once.
	shared := g.pool.scratch.get()
	if a.group == 1 && flatShift(geom) && hasGather16 && kern.nr == 16 {
		taps := geom.KH * geom.KW
		offs := shared.takeIdx(2*rows + (p+15)/16*taps*16)
		a.rowOff, a.rowMask, a.masks = offs[:rows], offs[rows:2*rows], offs[2*rows:]
		shiftPanels(geom, a.rowOff, a.rowMask, a.masks)
	} else {
		offs := shared.takeIdx(rows + a.group*p)
		a.rowOff, a.colOff = offs[:rows], offs[rows:]
		implicitOffsets(geom, a.rowOff, a.colOff[:p])
	}
	if a.group > 1 { // the next images' columns, one image (padded or not) further on
		stride := geom.C * geom.H * geom.W
		if geom.PH > 0 || geom.PW > 0 {
			stride = geom.C * (geom.H + 2*geom.PH) * (geom.W + 2*geom.PW)
		}
		for k := 1; k < a.group; k++ {
			for j, o := range a.colOff[:p] {
				a.colOff[k*p+j] = o + int32(k*stride)
			}
		}
	}
	if a.chunks > 1 && a.masks == nil && (geom.PH > 0 || geom.PW > 0) {
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
