package tensor

import (
	"math"
	"runtime"
	"sync"
)

// GoBackend is the pure-Go production backend: packed, cache-blocked GEMM
// and the other kernels split across a fixed pool of goroutines. It runs on
// every platform; faster backends fall back to it.
type GoBackend struct {
	pool *workerPool
	kern *microKernel
}

var _ Backend = (*GoBackend)(nil)

// NewGo returns a Go backend using threads cores (threads ≤ 0 means
// runtime.GOMAXPROCS(0)). Its GEMM uses the AVX2+FMA micro-kernel where the
// CPU has it (unless built with the noasm tag). Close stops its goroutines.
func NewGo(threads int) *GoBackend {
	b := NewPureGo(threads)
	if simdKernel != nil && hasAVX2FMA {
		b.kern = simdKernel
	}
	return b
}

// NewPureGo is NewGo without assembly: every kernel is plain Go.
func NewPureGo(threads int) *GoBackend {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	return &GoBackend{pool: newWorkerPool(threads), kern: goKernel}
}

// Close stops the backend's worker goroutines. The backend must not be used
// afterwards.
func (g *GoBackend) Close() { g.pool.close() }

// Name is "go", or "go+avx2" when the GEMM uses the AVX2 micro-kernel.
func (g *GoBackend) Name() string {
	if g.kern == goKernel {
		return "go"
	}
	return "go+" + g.kern.name
}
func (g *GoBackend) Threads() int { return g.pool.threads }

func (g *GoBackend) Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	g.pool.gemm(g.kern, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// convArgs carries an Im2Col or Col2Im call across the pool.
type convArgs struct {
	geom    ConvGeom
	n       int
	x, col  []float32
	inverse bool
	parts   int
	wg      partsLeft
}

func (a *convArgs) run(part int) {
	if a.inverse {
		lo, hi := split(a.n*a.geom.C, a.parts, 1, part)
		col2imPlanes(a.geom, a.n, a.col, a.x, lo, hi, false)
		return
	}
	lo, hi := split(a.geom.Rows(), a.parts, 1, part)
	im2colRows(a.geom, a.n, a.x, a.col, lo, hi)
}

func (g *GoBackend) conv(geom ConvGeom, n int, x, col []float32, inverse bool) {
	a := g.pool.convArgs.get()
	*a = convArgs{geom: geom, n: n, x: x, col: col, inverse: inverse}
	work := geom.Rows()
	if inverse {
		work = n * geom.C
	}
	a.parts = min(g.pool.threads, work)
	if n*geom.Rows()*geom.OH()*geom.OW() < 1<<14 {
		a.parts = 1
	}
	g.pool.run(a, a.parts, &a.wg)
	*a = convArgs{}
	g.pool.convArgs.put(a)
}

func (g *GoBackend) Im2Col(geom ConvGeom, n int, x, col []float32) { g.conv(geom, n, x, col, false) }
func (g *GoBackend) Col2Im(geom ConvGeom, n int, col, x []float32) { g.conv(geom, n, x, col, true) }

// im2colRows fills rows [lo, hi) of the im2col matrix.
func im2colRows(g ConvGeom, n int, x, col []float32, lo, hi int) {
	oh, ow := g.OH(), g.OW()
	ld := n * oh * ow
	var tab [maxShiftTaps]shiftRow
	var shifts []shiftRow
	if flatShift(g) {
		shifts = shiftTable(g, &tab)
	}
	for row := lo; row < hi; row++ {
		c, kh, kw := row/(g.KH*g.KW), row/g.KW%g.KH, row%g.KW
		dst := col[row*ld : (row+1)*ld]
		if shifts != nil {
			sr := &shifts[row%len(shifts)]
			for i := 0; i < n; i++ {
				plane := x[(i*g.C+c)*g.H*g.W : (i*g.C+c+1)*g.H*g.W]
				sr.im2col(plane, dst[i*oh*ow:(i+1)*oh*ow])
			}
			continue
		}
		// Output columns ox whose input column iw = ox·SW + kw − PW is inside [0, W).
		x0, x1 := validRange(ow, g.SW, kw-g.PW, g.W)
		for i := 0; i < n; i++ {
			plane := x[(i*g.C+c)*g.H*g.W : (i*g.C+c+1)*g.H*g.W]
			// Rows are short (7 to 28 values in the seed CNNs): plain loops,
			// not copy and clear, whose calls cost more than the moves.
			for y := 0; y < oh; y++ {
				d := dst[(i*oh+y)*ow : (i*oh+y+1)*ow]
				ih := y*g.SH + kh - g.PH
				if ih < 0 || ih >= g.H {
					zero(d)
					continue
				}
				src := plane[ih*g.W : (ih+1)*g.W]
				zero(d[:x0])
				if g.SW == 1 {
					s, dd := src[x0+kw-g.PW:x1+kw-g.PW], d[x0:x1]
					s = s[:len(dd)]
					for k, v := range s {
						dd[k] = v
					}
				} else {
					for ox := x0; ox < x1; ox++ {
						d[ox] = src[ox*g.SW+kw-g.PW]
					}
				}
				zero(d[x1:])
			}
		}
	}
}

// zero sets the few values of s to 0 with a loop (clear calls memclr,
// which costs more than a short row).
func zero(s []float32) {
	for k := 0; k < len(s); k++ {
		s[k] = 0
	}
}

// col2imPlanes writes the (image, channel) planes [lo, hi) of x. With
// clobber set it may overwrite the col entries that fall in the padding
// (see shiftRow.col2im).
func col2imPlanes(g ConvGeom, n int, col, x []float32, lo, hi int, clobber bool) {
	oh, ow := g.OH(), g.OW()
	ld := n * oh * ow
	var tab [maxShiftTaps]shiftRow
	var shifts []shiftRow
	if clobber && flatShift(g) {
		shifts = shiftTable(g, &tab)
	}
	for pl := lo; pl < hi; pl++ {
		i, c := pl/g.C, pl%g.C
		plane := x[pl*g.H*g.W : (pl+1)*g.H*g.W]
		clear(plane)
		if shifts != nil {
			for t := range shifts {
				row := c*len(shifts) + t
				shifts[t].col2im(col[row*ld+i*oh*ow:row*ld+(i+1)*oh*ow], plane)
			}
			continue
		}
		for kh := 0; kh < g.KH; kh++ {
			for kw := 0; kw < g.KW; kw++ {
				row := (c*g.KH+kh)*g.KW + kw
				src := col[row*ld+i*oh*ow : row*ld+(i+1)*oh*ow]
				x0, x1 := validRange(ow, g.SW, kw-g.PW, g.W)
				for y := 0; y < oh; y++ {
					ih := y*g.SH + kh - g.PH
					if ih < 0 || ih >= g.H {
						continue
					}
					s := src[y*ow : (y+1)*ow]
					d := plane[ih*g.W : (ih+1)*g.W]
					if g.SW == 1 {
						switch n := x1 - x0; {
						case n >= 16:
							addTo(d[x0+kw-g.PW:x1+kw-g.PW], s[x0:x1])
						case n > 0: // a short row: a loop costs less than the call
							dd, ss := d[x0+kw-g.PW:x1+kw-g.PW], s[x0:x1]
							ss = ss[:len(dd)]
							for k, v := range ss {
								dd[k] += v
							}
						}
						continue
					}
					for ox := x0; ox < x1; ox++ {
						d[ox*g.SW+kw-g.PW] += s[ox]
					}
				}
			}
		}
	}
}

// flatShift reports whether g is a stride-1 convolution whose output rows
// are as wide as its input rows (OW = W, "same" padding across) and whose
// kernel has at most maxShiftTaps taps. Then an im2col row (c, kh, kw) of
// one image is its input plane read at the constant flat shift
// s = (kh−PH)·W + kw−PW,
//
//	Im2Col[(c, kh, kw), p] = x[c][p + s]
//
// except in the output rows that read the padding above or below the image
// and in the |kw−PW| columns of every row that read the padding beside it:
// one long move and a few zeros per row, not a move per output row.
func flatShift(g ConvGeom) bool {
	return g.SH == 1 && g.SW == 1 && g.OW() == g.W && g.KH*g.KW <= maxShiftTaps
}

// maxShiftTaps bounds the kernels that take the shifted-plane path (7×7),
// so that their shiftRow table fits on the stack.
const maxShiftTaps = 49

// shiftRow is the shifted-plane form of one kernel tap (kh, kw) of a
// flatShift geometry: im2col row (c, kh, kw) at flat output position j is
// x[c][j + s] for the output rows [y0, y1) inside the image vertically,
// except in the columns [zlo, zlo+zn) of each such row, which read the
// padding beside it; [j0, j1) ⊆ [y0·W, y1·W) are the positions whose reads
// stay inside the plane (the rest of [y0·W, y1·W) lies in those columns).
type shiftRow struct {
	s, w, y0, y1, j0, j1, zlo, zn int
}

// shiftTable fills tab[kh·KW + kw] for every tap of g, a flatShift
// geometry, and returns the filled part.
func shiftTable(g ConvGeom, tab *[maxShiftTaps]shiftRow) []shiftRow {
	oh := g.OH()
	for kh := 0; kh < g.KH; kh++ {
		for kw := 0; kw < g.KW; kw++ {
			r := shiftRow{s: (kh-g.PH)*g.W + kw - g.PW, w: g.W}
			r.y0, r.y1 = max(0, g.PH-kh), min(oh, g.H+g.PH-kh)
			r.y1 = max(r.y1, r.y0)
			r.j0, r.j1 = max(r.y0*g.W, -r.s), min(r.y1*g.W, g.H*g.W-r.s)
			r.j1 = max(r.j1, r.j0)
			switch {
			case kw < g.PW:
				r.zlo, r.zn = 0, min(g.PW-kw, g.W)
			case kw > g.PW:
				r.zn = min(kw-g.PW, g.W)
				r.zlo = g.W - r.zn
			}
			tab[kh*g.KW+kw] = r
		}
	}
	return tab[:g.KH*g.KW]
}

// zeroPad zeroes the padding columns of d's rows [y0, y1).
func (r *shiftRow) zeroPad(d []float32) {
	if r.zn == 0 {
		return
	}
	for y := r.y0; y < r.y1; y++ {
		zero(d[y*r.w+r.zlo : y*r.w+r.zlo+r.zn])
	}
}

// im2col writes one image's im2col row d (OH·W) from its input plane (H·W).
func (r *shiftRow) im2col(plane, d []float32) {
	zero(d[:r.y0*r.w])
	zero(d[r.y1*r.w:])
	copy(d[r.j0:r.j1], plane[r.j0+r.s:r.j1+r.s])
	r.zeroPad(d)
}

// col2im adds one image's im2col row src (OH·W) into its plane (H·W), the
// adjoint of im2col: the entries of src that read the padding beside the
// image are set to 0 first (src is scratch), so that the rest goes in with
// one long add.
func (r *shiftRow) col2im(src, plane []float32) {
	r.zeroPad(src)
	if r.j1 > r.j0 {
		addTo(plane[r.j0+r.s:r.j1+r.s], src[r.j0:r.j1])
	}
}

// validRange returns [x0, x1): the outputs o < n with 0 ≤ o·stride + off < limit.
func validRange(n, stride, off, limit int) (x0, x1 int) {
	x0 = 0
	if off < 0 {
		x0 = (-off + stride - 1) / stride
	}
	x1 = 0
	if limit-off > 0 {
		x1 = (limit - off + stride - 1) / stride
	}
	x0, x1 = min(x0, n), min(x1, n)
	if x1 < x0 {
		x1 = x0
	}
	return x0, x1
}

func (g *GoBackend) AddBias(x, bias []float32, outer, inner int) {
	c := len(bias)
	for o := 0; o < outer; o++ {
		if inner == 1 {
			addTo(x[o*c:(o+1)*c], bias)
			continue
		}
		for j, bv := range bias {
			seg := x[(o*c+j)*inner : (o*c+j+1)*inner]
			for i := range seg {
				seg[i] += bv
			}
		}
	}
}

func (g *GoBackend) SumBias(dy, db []float32, outer, inner int) {
	c := len(db)
	for o := 0; o < outer; o++ {
		if inner == 1 {
			addTo(db, dy[o*c:(o+1)*c]) // the same order of sums as a loop
			continue
		}
		for j := range db {
			db[j] += sum32(dy[(o*c+j)*inner : (o*c+j+1)*inner])
		}
	}
}

func (g *GoBackend) Transpose021(src, dst []float32, a, b, c int) {
	g.elem(a*b*c, a, func(e *elemArgs) { e.op, e.a, e.b, e.d0, e.d1, e.d2 = opTranspose021, src, dst, a, b, c })
}

func (g *GoBackend) Relu(x, y []float32) {
	g.elem(len(x), len(x)/64+1, func(e *elemArgs) { e.op, e.a, e.b = opRelu, x, y[:len(x)] })
}

func (g *GoBackend) ReluBackward(dy, y, dx []float32) {
	g.elem(len(dy), len(dy)/64+1, func(e *elemArgs) { e.op, e.a, e.b, e.c = opReluBackward, dy, y[:len(dy)], dx[:len(dy)] })
}

func (g *GoBackend) MaxPool(geom PoolGeom, planes int, x, y []float32, idx []int32) {
	var off []int32
	if idx != nil && gatherPool(geom) {
		s := g.pool.scratch.get()
		defer g.pool.scratch.put(s)
		off = s.takeIdx(poolGroup(geom) * geom.OH() * geom.OW())
		poolOffsets(geom, off)
	}
	g.elem(planes*geom.H*geom.W, planes, func(e *elemArgs) {
		e.op, e.a, e.b, e.idx, e.d0, e.pool, e.off = opMaxPool, x, y, idx, planes, geom, off
	})
}

func (g *GoBackend) MaxPoolBackward(geom PoolGeom, planes int, dy []float32, idx []int32, dx []float32) {
	g.elem(planes*geom.H*geom.W, planes, func(e *elemArgs) {
		e.op, e.a, e.b, e.idx, e.d0, e.pool = opMaxPoolBackward, dy, dx, idx, planes, geom
	})
}

func (g *GoBackend) Softmax(x, y []float32, rows, cols int) {
	for r := 0; r < rows; r++ {
		row, out := x[r*cols:(r+1)*cols], y[r*cols:(r+1)*cols]
		m := row[0]
		for _, v := range row {
			m = max(m, v)
		}
		var s float32
		for j, v := range row {
			e := float32(math.Exp(float64(v - m)))
			out[j] = e
			s += e
		}
		inv := 1 / s
		for j := range out {
			out[j] *= inv
		}
	}
}

func (g *GoBackend) Argmax(x []float32, rows, cols int, out []int32) {
	for r := 0; r < rows; r++ {
		row := x[r*cols : (r+1)*cols]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		out[r] = int32(best)
	}
}

func (g *GoBackend) Sum(x []float32) float32 { return sum32(x) }

// sum32 sums with four float32 accumulators (pairwise enough for the sizes
// reduced here, and the order is fixed, so results are reproducible).
func sum32(x []float32) float32 {
	var s0, s1, s2, s3 float32
	for len(x) >= 4 {
		s0 += x[0]
		s1 += x[1]
		s2 += x[2]
		s3 += x[3]
		x = x[4:]
	}
	for _, v := range x {
		s0 += v
	}
	return (s0 + s1) + (s2 + s3)
}

func (g *GoBackend) Dot(x, y []float32) float32 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float32
	for len(x) >= 4 && len(y) >= 4 {
		s0 += x[0] * y[0]
		s1 += x[1] * y[1]
		s2 += x[2] * y[2]
		s3 += x[3] * y[3]
		x, y = x[4:], y[4:]
	}
	for i, v := range x {
		s0 += v * y[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func (g *GoBackend) Axpy(alpha float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += alpha * v
	}
}

func (g *GoBackend) Scale(alpha float32, x []float32) {
	for i := range x {
		x[i] *= alpha
	}
}

var (
	defaultOnce    sync.Once
	defaultBackend Backend
)

// Default returns the process-wide backend: the fastest one this machine
// supports, using every core GOMAXPROCS allows. It is created on first use.
func Default() Backend {
	defaultOnce.Do(func() { defaultBackend = NewGo(0) })
	return defaultBackend
}
