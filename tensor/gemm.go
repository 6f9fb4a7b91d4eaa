package tensor

// Blocking of the pure-Go GEMM (BLIS-style): C is computed in mr×nr tiles by
// a register-blocked micro-kernel over packed panels; A is packed in mc×kc
// blocks (L2), B in kc×nc blocks (L3).
const (
	gemmKC = 256
	gemmMC = 120  // a multiple of every micro-kernel's mr
	gemmNC = 1024 // a multiple of every micro-kernel's nr
	// gemmMinParallel is the FLOP count under which a GEMM runs on one core.
	gemmMinParallel = 1 << 20
	// gemmSplitMin is the FLOP count under which a lone GEMM call runs on
	// one core: below ~16 MFLOP (a recurrent step's 64×512×128) waking the
	// other cores and joining them cost more than they save, as measured
	// on the row-MNIST LSTM (slower at 2 threads than at 1 with 1 << 20).
	gemmSplitMin = 1 << 24
)

// operand is one input of a GEMM: a matrix as stored (row stride ld,
// transposed or not); or, when packed is set, the whole matrix already laid
// out in panels by packAll / packAllB; or an image's implicit im2col. Of a
// packed or implicit operand the rows (A) or columns (B) from off on are
// used.
type operand struct {
	implicit *implicitCol // B only: an image's im2col, read in place
	m        []float32
	ld       int
	trans    bool
	packed   []float32
	pad      int // A: rows, B: columns of the packed matrix, rounded up to the panel size
	off      int // a multiple of the panel size
}

// gemmArgs are the arguments of one GEMM call, split across the pool by
// columns (or rows when C is tall).
type gemmArgs struct {
	m, n, k     int
	alpha, beta float32
	a, b        operand
	c           []float32
	ldc         int
	parts       int
	byRows      bool
	kern        *microKernel
	bufs        freeList[gemmBuffers]
	wg          partsLeft
}

// microKernel computes one mr×nr tile of C from packed panels:
// c[i·ldc+j] += alpha·Σ_p a[p·mr+i]·b[p·nr+j] for i < rows, j < cols.
type microKernel struct {
	name   string
	mr, nr int
	fn     func(kb int, a, b []float32, alpha float32, c []float32, ldc, rows, cols int)
}

// goKernel is the pure-Go micro-kernel, the fallback everywhere.
var goKernel = &microKernel{name: "go", mr: 4, nr: 4, fn: kernel4x4}

// gemmBuffers are one core's packing buffers.
type gemmBuffers struct {
	a [gemmMC * gemmKC]float32
	b [gemmKC * gemmNC]float32
	// ic is the implicit im2col operand of a convolution, kept here so
	// that pointing an operand at it allocates nothing.
	ic implicitCol
}

// rows returns the operand from row r of op(A) on.
func (o operand) rows(r int) operand {
	switch {
	case o.packed != nil:
		o.off += r
	case o.trans:
		o.m = o.m[r:]
	default:
		o.m = o.m[r*o.ld:]
	}
	return o
}

// cols returns the operand from column j of op(B) on.
func (o operand) cols(j int) operand {
	switch {
	case o.packed != nil || o.implicit != nil:
		o.off += j
	case o.trans:
		o.m = o.m[j*o.ld:]
	default:
		o.m = o.m[j:]
	}
	return o
}

func (g *gemmArgs) run(part int) {
	buf := g.bufs.get()
	defer g.bufs.put(buf)
	if g.byRows {
		lo, hi := split(g.m, g.parts, g.kern.mr, part)
		if lo == hi {
			return
		}
		c := g.c[lo*g.ldc:]
		scaleMatrix(g.beta, c, hi-lo, g.n, g.ldc)
		gemmAcc(g.kern, g.a.rows(lo), g.b, hi-lo, g.n, g.k, g.alpha, c, g.ldc, buf)
		return
	}
	lo, hi := split(g.n, g.parts, g.kern.nr, part)
	if lo == hi {
		return
	}
	c := g.c[lo:]
	scaleMatrix(g.beta, c, g.m, hi-lo, g.ldc)
	gemmAcc(g.kern, g.a, g.b.cols(lo), g.m, hi-lo, g.k, g.alpha, c, g.ldc, buf)
}

// gemm is the Go backend's GEMM: see Backend.Gemm.
func (p *workerPool) gemm(kern *microKernel, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	p.gemmOps(kern, m, n, k, alpha, operand{m: a, ld: lda, trans: transA}, operand{m: b, ld: ldb, trans: transB}, beta, c, ldc)
}

// gemmOps computes C = alpha·op(A)·op(B) + beta·C across the pool.
func (p *workerPool) gemmOps(kern *microKernel, m, n, k int, alpha float32, a, b operand, beta float32, c []float32, ldc int) {
	if m <= 0 || n <= 0 {
		return
	}
	g := p.gemmArgs.get()
	*g = gemmArgs{kern: kern, bufs: p.gemmBufs, m: m, n: n, k: k, alpha: alpha, beta: beta, a: a, b: b, c: c, ldc: ldc}
	flops := 2 * m * n * k
	parts := 1
	if p.threads > 1 && flops >= gemmSplitMin {
		parts = min(p.threads, max(1, flops/gemmMinParallel))
	}
	g.byRows = m > n
	if g.byRows {
		parts = min(parts, (m+kern.mr-1)/kern.mr)
	} else {
		parts = min(parts, (n+kern.nr-1)/kern.nr)
	}
	g.parts = parts
	p.run(g, parts, &g.wg)
	*g = gemmArgs{}
	p.gemmArgs.put(g)
}

// gemmSerial computes C = alpha·op(A)·op(B) + beta·C on one core.
func gemmSerial(kern *microKernel, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int, buf *gemmBuffers) {
	scaleMatrix(beta, c, m, n, ldc)
	gemmAcc(kern, operand{m: a, ld: lda, trans: transA}, operand{m: b, ld: ldb, trans: transB}, m, n, k, alpha, c, ldc, buf)
}

// gemmAcc adds alpha·op(A)·op(B) to C on one core, packing the operands
// that are not packed already.
func gemmAcc(kern *microKernel, a, b operand, m, n, k int, alpha float32, c []float32, ldc int, buf *gemmBuffers) {
	if k == 0 || alpha == 0 {
		return
	}
	for jc := 0; jc < n; jc += gemmNC {
		nb := min(gemmNC, n-jc)
		for pc := 0; pc < k; pc += gemmKC {
			kb := min(gemmKC, k-pc)
			packedB := buf.b[:]
			switch {
			case b.implicit != nil:
				packBImplicit(kern.nr, b.implicit, pc, b.off+jc, kb, nb, packedB)
			case b.packed == nil:
				packB(kern.nr, b.trans, b.m, b.ld, pc, jc, kb, nb, packedB)
			default:
				packedB = b.packed[pc*b.pad+(b.off+jc)*kb:]
			}
			for ic := 0; ic < m; ic += gemmMC {
				mb := min(gemmMC, m-ic)
				packedA := buf.a[:]
				if a.packed == nil {
					packA(kern.mr, a.trans, a.m, a.ld, ic, pc, mb, kb, packedA)
				} else {
					packedA = a.packed[pc*a.pad+(a.off+ic)*kb:]
				}
				for jr := 0; jr < nb; jr += kern.nr {
					bp := packedB[jr*kb : (jr+kern.nr)*kb]
					for ir := 0; ir < mb; ir += kern.mr {
						ap := packedA[ir*kb : (ir+kern.mr)*kb]
						ci := (ic+ir)*ldc + jc + jr
						kern.fn(kb, ap, bp, alpha, c[ci:], ldc, min(kern.mr, mb-ir), min(kern.nr, nb-jr))
					}
				}
			}
		}
	}
}

// scaleMatrix sets C = beta·C for C (m, n) with row stride ldc; beta = 0
// writes zeros.
func scaleMatrix(beta float32, c []float32, m, n, ldc int) {
	if beta == 1 {
		return
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// packA copies the mb×kb block of op(A) at (ic, pc) into dst as panels of
// mr rows: panel q holds, for each p < kb, op(A)[ic+q·mr+0..mr−1, pc+p],
// zero-padded past mb.
func packA(mr int, trans bool, a []float32, lda, ic, pc, mb, kb int, dst []float32) {
	for q := 0; q < mb; q += mr {
		panel := dst[q*kb : (q+mr)*kb]
		rows := min(mr, mb-q)
		if rows < mr {
			clear(panel)
		}
		if trans { // op(A)[i, p] = A[p, i]: the panel's rows at p are contiguous in A
			i := ic + q
			if rows == 6 && mr == 6 { // the AVX2 kernel's panels, unrolled
				for p := 0; p < kb; p++ {
					d, o := panel[p*6:p*6+6:p*6+6], (pc+p)*lda+i
					s := a[o : o+6 : o+6]
					d[0], d[1], d[2], d[3], d[4], d[5] = s[0], s[1], s[2], s[3], s[4], s[5]
				}
				continue
			}
			for p := 0; p < kb; p++ {
				copy(panel[p*mr:p*mr+rows], a[(pc+p)*lda+i:(pc+p)*lda+i+rows])
			}
			continue
		}
		if rows == 6 && mr == 6 { // six rows at once: the panel written in order
			i := (ic+q)*lda + pc
			p0 := 0
			if hasAVX2FMA && kb > 8 {
				// Eight columns at a time in registers; each block's
				// stores spill into the next column's slot, so at least
				// one column is left to the loop below.
				blocks := (kb - 1) / 8
				_ = a[i+5*lda+8*blocks-1] // packA6 does not check
				packA6(&panel[0], &a[i], lda, blocks)
				p0 = 8 * blocks
			}
			r0 := a[i : i+kb]
			r1, r2 := a[i+lda:i+lda+kb], a[i+2*lda:i+2*lda+kb]
			r3, r4, r5 := a[i+3*lda:i+3*lda+kb], a[i+4*lda:i+4*lda+kb], a[i+5*lda:i+5*lda+kb]
			r1, r2, r3, r4, r5 = r1[:len(r0)], r2[:len(r0)], r3[:len(r0)], r4[:len(r0)], r5[:len(r0)]
			panel = panel[:6*len(r0)]
			for p := p0; p < len(r0); p++ {
				v := r0[p]
				d := panel[p*6 : p*6+6 : p*6+6]
				d[0], d[1], d[2], d[3], d[4], d[5] = v, r1[p], r2[p], r3[p], r4[p], r5[p]
			}
			continue
		}
		for r := 0; r < rows; r++ {
			i := ic + q + r
			src := a[i*lda+pc : i*lda+pc+kb]
			for p, v := range src {
				panel[p*mr+r] = v
			}
		}
	}
}

// roundUp returns n rounded up to a multiple of q.
func roundUp(n, q int) int { return (n + q - 1) / q * q }

// packAll packs all of op(A) (m, k) for gemmAcc: the block of columns
// [pc, pc+kb) is packA's layout of rows 0..m at dst[pc·mPad:], where mPad
// is m rounded up to mr. dst holds mPad·k values.
func packAll(mr int, trans bool, a []float32, lda, m, k int, dst []float32) {
	mPad := roundUp(m, mr)
	for pc := 0; pc < k; pc += gemmKC {
		packA(mr, trans, a, lda, 0, pc, m, min(gemmKC, k-pc), dst[pc*mPad:])
	}
}

// packAllB packs all of op(B) (k, n) for gemmAcc: the block of rows
// [pc, pc+kb) is packB's layout of columns 0..n at dst[pc·nPad:], where
// nPad is n rounded up to nr. dst holds nPad·k values.
func packAllB(nr int, trans bool, b []float32, ldb, k, n int, dst []float32) {
	nPad := roundUp(n, nr)
	for pc := 0; pc < k; pc += gemmKC {
		packB(nr, trans, b, ldb, pc, 0, min(gemmKC, k-pc), n, dst[pc*nPad:])
	}
}

// packB copies the kb×nb block of op(B) at (pc, jc) into dst as panels of
// nr columns: panel q holds, for each p < kb, op(B)[pc+p, jc+q·nr+0..nr−1],
// zero-padded past nb.
func packB(nr int, trans bool, b []float32, ldb, pc, jc, kb, nb int, dst []float32) {
	for q := 0; q < nb; q += nr {
		panel := dst[q*kb : (q+nr)*kb]
		cols := min(nr, nb-q)
		if cols < nr {
			clear(panel)
		}
		if !trans && cols == nr && nr == 16 && hasGather16 && kb > 0 {
			src := b[pc*ldb+jc+q:]
			_ = src[(kb-1)*ldb+15] // pack16 does not check
			pack16(&panel[0], &src[0], ldb, kb)
			continue
		}
		if !trans && cols == nr {
			for p := 0; p < kb; p++ {
				copy(panel[p*nr:p*nr+nr], b[(pc+p)*ldb+jc+q:])
			}
			continue
		}
		p0 := 0
		if trans && cols == nr && nr == 16 && hasGather16 && kb >= 8 {
			// Whole 8-row blocks as register transposes, the rest below.
			p0 = kb &^ 7
			src := b[(jc+q)*ldb+pc:]
			_ = src[15*ldb+p0-1] // packT16 does not check
			packT16(&panel[0], &src[0], ldb, p0/8)
		}
		for cc := 0; cc < cols; cc++ {
			j := jc + q + cc
			if trans && p0 > 0 {
				for p := p0; p < kb; p++ {
					panel[p*nr+cc] = b[j*ldb+pc+p]
				}
				continue
			}
			if trans { // op(B)[p, j] = B[j, p]
				src := b[j*ldb+pc : j*ldb+pc+kb]
				for p, v := range src {
					panel[p*nr+cc] = v
				}
			} else {
				for p := 0; p < kb; p++ {
					panel[p*nr+cc] = b[(pc+p)*ldb+j]
				}
			}
		}
	}
}

// kernel4x4 adds alpha·Σ_p a[p, 0..3]ᵀ·b[p, 0..3] to the rows×cols corner of
// the 4×4 tile of C at c (row stride ldc). a and b are packed panels of kb
// steps.
func kernel4x4(kb int, a, b []float32, alpha float32, c []float32, ldc, rows, cols int) {
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	var c20, c21, c22, c23, c30, c31, c32, c33 float32
	a = a[:4*kb]
	b = b[:4*kb]
	for len(a) >= 4 && len(b) >= 4 {
		a0, a1, a2, a3 := a[0], a[1], a[2], a[3]
		b0, b1, b2, b3 := b[0], b[1], b[2], b[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
		a, b = a[4:], b[4:]
	}
	if rows == 4 && cols == 4 {
		r := c[:3*ldc+4]
		r[0] += alpha * c00
		r[1] += alpha * c01
		r[2] += alpha * c02
		r[3] += alpha * c03
		r = r[ldc:]
		r[0] += alpha * c10
		r[1] += alpha * c11
		r[2] += alpha * c12
		r[3] += alpha * c13
		r = r[ldc:]
		r[0] += alpha * c20
		r[1] += alpha * c21
		r[2] += alpha * c22
		r[3] += alpha * c23
		r = r[ldc:]
		r[0] += alpha * c30
		r[1] += alpha * c31
		r[2] += alpha * c32
		r[3] += alpha * c33
		return
	}
	acc := [4][4]float32{
		{c00, c01, c02, c03}, {c10, c11, c12, c13},
		{c20, c21, c22, c23}, {c30, c31, c32, c33},
	}
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			c[i*ldc+j] += alpha * acc[i][j]
		}
	}
}
