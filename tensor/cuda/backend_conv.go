package cuda

import "github.com/maas-ml/maas/tensor"

// Gemm computes C = alpha·op(A)·op(B) + beta·C through cuBLAS: see
// tensor.Backend.Gemm. C is uploaded only when its values are read (beta
// ≠ 0) or rows have padding between them that must come back unchanged.
func (b *Backend) Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, bm []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	b.enter()
	defer b.leave()
	rowsA, colsA := m, k
	if transA {
		rowsA, colsA = k, m
	}
	rowsB, colsB := k, n
	if transB {
		rowsB, colsB = n, k
	}
	pa := b.up(sA, a[:span(rowsA, colsA, lda)])
	pb := b.up(sB, bm[:span(rowsB, colsB, ldb)])
	cs := span(m, n, ldc)
	var pc uintptr
	if beta != 0 || ldc != n {
		pc = b.up(sC, c[:cs])
	} else {
		pc = b.scratch(sC, 4*cs)
	}
	b.gemm(transA, transB, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc)
	b.down(c[:cs], sC)
}

// Pack does nothing: GemmPacked and Conv2D read w.W.
func (b *Backend) Pack(*tensor.Packed) {}

// GemmPacked computes C = alpha·A·Wᵀ + beta·C: see tensor.Backend.GemmPacked.
func (b *Backend) GemmPacked(m int, alpha float32, a []float32, lda int, w *tensor.Packed, beta float32, c []float32, ldc int) {
	b.Gemm(false, true, m, w.Rows, w.K, alpha, a, lda, w.W, w.K, beta, c, ldc)
}

// Im2Col unfolds x (n, C, H, W) into col (C·KH·KW, n·OH·OW).
func (b *Backend) Im2Col(g tensor.ConvGeom, n int, x, col []float32) {
	size, cols := n*g.C*g.H*g.W, g.Rows()*n*g.OH()*g.OW()
	if cols == 0 {
		return
	}
	b.enter()
	defer b.leave()
	px := b.up(sA, x[:size])
	pc := b.scratch(sCol, 4*cols)
	b.runGeom(kIm2col, cols, convGeom(g, n), ptr(px), ptr(pc))
	b.down(col[:cols], sCol)
}

// Col2Im overwrites x (n, C, H, W) with the adjoint of Im2Col of col.
func (b *Backend) Col2Im(g tensor.ConvGeom, n int, col, x []float32) {
	size, cols := n*g.C*g.H*g.W, g.Rows()*n*g.OH()*g.OW()
	if size == 0 {
		return
	}
	b.enter()
	defer b.leave()
	pc := b.up(sCol, col[:cols])
	px := b.scratch(sA, 4*size)
	b.runGeom(kCol2im, size, convGeom(g, n), ptr(pc), ptr(px))
	b.down(x[:size], sA)
}

// Conv2D is a convolution's forward pass: see tensor.Backend.Conv2D. For
// x (n, C, H, W) and W (OC, C·KH·KW):
//
//	col = Im2Col(x)             (C·KH·KW, n·P)
//	yc  = W · col               (OC, n·P), cuBLAS
//	y   = relu(yc + bias)       (n, OC, P), one kernel
func (b *Backend) Conv2D(g tensor.ConvGeom, n int, x []float32, w *tensor.Packed, bias []float32, relu bool, y []float32) {
	oc, rows, p := w.Rows, g.Rows(), g.OH()*g.OW()
	if n*oc*p == 0 {
		return
	}
	b.enter()
	defer b.leave()
	px := b.up(sA, x[:n*g.C*g.H*g.W])
	pw := b.up(sB, w.W[:oc*rows])
	var pbias uintptr
	if bias != nil {
		pbias = b.up(sD, bias[:oc])
	}
	pcol := b.scratch(sCol, 4*rows*n*p)
	pyc := b.scratch(sTmp, 4*oc*n*p)
	py := b.scratch(sC, 4*n*oc*p)
	b.runGeom(kIm2col, rows*n*p, convGeom(g, n), ptr(px), ptr(pcol))
	b.gemm(false, false, oc, n*p, rows, 1, pw, rows, pcol, n*p, 0, pyc, n*p)
	b.run(kConvBiasRelu, n*oc*p, ptr(pyc), ptr(pbias), ptr(py), i32(n), i32(oc), i32(p), flag(relu))
	b.down(y[:n*oc*p], sC)
}

// Conv2DBackward is a convolution's backward pass: see
// tensor.Backend.Conv2DBackward. With dyt (OC, n·P) = dy (n, OC, P)
// transposed and col = Im2Col(x) (C·KH·KW, n·P):
//
//	dw += dyt · colᵀ    db += Σ dy    dx = Col2Im(Wᵀ · dyt)
func (b *Backend) Conv2DBackward(g tensor.ConvGeom, n int, x, w, dy, dw, db, dx []float32) {
	rows, p := g.Rows(), g.OH()*g.OW()
	oc := len(w) / rows
	np := n * p
	if oc == 0 || np == 0 {
		return
	}
	b.enter()
	defer b.leave()
	size := n * g.C * g.H * g.W
	dxOnly := dw == nil && db == nil
	px := b.up(sA, x[:size])
	pw := b.up(sB, w[:oc*rows])
	pdy := b.up(sC, dy[:oc*np])
	pcol := b.scratch(sCol, 4*rows*np)
	pdyt := b.scratch(sTmp, 4*oc*np)
	b.run(kTranspose021, oc*np, ptr(pdy), ptr(pdyt), i32(n), i32(oc), i32(p))
	if !dxOnly {
		pdw := b.up(sD, dw[:oc*rows])
		pdb := b.up(sE, db[:oc])
		b.runGeom(kIm2col, rows*np, convGeom(g, n), ptr(px), ptr(pcol))
		b.gemm(false, true, oc, rows, np, 1, pdyt, np, pcol, np, 1, pdw, rows)
		b.run(kSumBias, oc, ptr(pdy), ptr(pdb), i32(n), i32(oc), i32(p))
		defer func() {
			b.down(dw[:oc*rows], sD)
			b.down(db[:oc], sE)
		}()
	}
	if dx != nil {
		// dcol (C·KH·KW, n·P) = Wᵀ · dyt overwrites col; dx goes to x's buffer.
		b.gemm(true, false, rows, np, oc, 1, pw, rows, pdyt, np, 0, pcol, np)
		b.runGeom(kCol2im, size, convGeom(g, n), ptr(pcol), ptr(px))
		b.down(dx[:size], sA)
	}
}
