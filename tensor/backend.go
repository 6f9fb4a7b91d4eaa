package tensor

import "fmt"

// Backend computes the kernels. Slices are row-major; each method documents
// the shapes it expects. Methods do not allocate in the steady state and do
// not retain the slices they are given. A Backend is safe for concurrent use.
//
// Inputs and outputs of a call must not overlap unless the method says so.
type Backend interface {
	// Name identifies the backend ("reference", "go", ...).
	Name() string
	// Threads is the number of cores the backend may use.
	Threads() int

	// Gemm computes C = alpha·op(A)·op(B) + beta·C, where op(X) is X or Xᵀ.
	// op(A) is (m, k), op(B) is (k, n), C is (m, n); lda, ldb and ldc are the
	// row strides of A, B and C as stored. beta = 0 overwrites C (NaNs in C
	// are not propagated).
	Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)
	// Pack lays out w.W for this backend's products (see Packed). A backend
	// without a packed layout does nothing; its products read w.W.
	Pack(w *Packed)
	// GemmPacked computes C = alpha·A·Wᵀ + beta·C for A (m, w.K) with row
	// stride lda and W = w.W (w.Rows, w.K) packed with Left unset; C is
	// (m, w.Rows) with row stride ldc. An unpacked w is read directly.
	GemmPacked(m int, alpha float32, a []float32, lda int, w *Packed, beta float32, c []float32, ldc int)

	// Im2Col unfolds a batch x (n, C, H, W) into col (C·KH·KW, n·OH·OW): row
	// (c, kh, kw), column (i, oh, ow) holds x[i, c, oh·SH+kh−PH, ow·SW+kw−PW],
	// or 0 where that falls in the padding.
	Im2Col(g ConvGeom, n int, x, col []float32)
	// Col2Im is the adjoint of Im2Col: it overwrites x (n, C, H, W) with the
	// sum of the col entries that Im2Col would have read from each pixel.
	Col2Im(g ConvGeom, n int, col, x []float32)
	// Conv2D is a convolution's forward pass: for x (n, C, H, W), weights
	// w.W (w.Rows output channels, C·KH·KW) packed with Left set, and bias
	// (w.Rows, or nil for none) it writes y (n, w.Rows, OH, OW) with
	//
	//	y[i, o, p] = bias[o] + Σ_r W[o, r]·Im2Col(x_i)[r, p]
	//
	// then y = max(y, 0) when relu.
	Conv2D(g ConvGeom, n int, x []float32, w *Packed, bias []float32, relu bool, y []float32)
	// Conv2DBackward is a convolution's backward pass from the forward
	// pass's input x, the weights W (OC, C·KH·KW) and dy (n, OC, OH·OW):
	//
	//	dw += Σ_i dy_i · Im2Col(x_i)ᵀ    db[o] += Σ_i Σ_p dy[i, o, p]
	//	dx_i = Col2Im(Wᵀ · dy_i)         (only when dx is not nil)
	//
	// With dw and db both nil it computes dx only (an input gradient, as
	// explanations need).
	Conv2DBackward(g ConvGeom, n int, x, w, dy, dw, db, dx []float32)

	// AddBias adds bias[j] to every x[o, j, i] of x (outer, len(bias), inner).
	AddBias(x, bias []float32, outer, inner int)
	// SumBias accumulates db[j] += Σ_o Σ_i dy[o, j, i] for dy (outer, len(db), inner).
	SumBias(dy, db []float32, outer, inner int)
	// Transpose021 writes dst (b, a, c) from src (a, b, c): dst[j, i, k] = src[i, j, k].
	Transpose021(src, dst []float32, a, b, c int)

	// Relu writes y = max(x, 0); y may be x.
	Relu(x, y []float32)
	// ReluBackward writes dx = dy where y > 0, else 0; dx may be dy.
	ReluBackward(dy, y, dx []float32)
	// Sigmoid writes y = 1/(1 + exp(−x)) and Tanh y = tanh(x), elementwise,
	// within 2e-7 of the exact value (absolute, and relative for tanh near
	// 0); y may be x.
	Sigmoid(x, y []float32)
	Tanh(x, y []float32)

	// MaxPool pools x (planes, H, W) into y (planes, OH, OW) with windows of
	// g.KH×g.KW and stride g.SH×g.SW (no padding, windows that do not fit are
	// dropped), and records in idx the flat index into x of each maximum
	// (the first one on ties). idx may be nil when no backward pass follows.
	MaxPool(g PoolGeom, planes int, x, y []float32, idx []int32)
	// MaxPoolBackward overwrites dx (planes, H, W) with zeros, then adds each
	// dy[o] at dx[idx[o]], for idx as MaxPool recorded it (each index in
	// its own window).
	MaxPoolBackward(g PoolGeom, planes int, dy []float32, idx []int32, dx []float32)

	// Softmax writes y = softmax(x) row by row for x (rows, cols); y may be x.
	Softmax(x, y []float32, rows, cols int)
	// Argmax writes the column index of each row's maximum (the first on ties).
	Argmax(x []float32, rows, cols int, out []int32)

	// Sum returns Σ x[i].
	Sum(x []float32) float32
	// Dot returns Σ x[i]·y[i].
	Dot(x, y []float32) float32
	// Axpy computes y += alpha·x.
	Axpy(alpha float32, x, y []float32)
	// Scale computes x *= alpha.
	Scale(alpha float32, x []float32)
}

// ConvGeom is the geometry of a 2-D convolution over one (C, H, W) image:
// kernel KH×KW, stride SH×SW, zero padding PH×PW on each side.
type ConvGeom struct {
	C, H, W        int
	KH, KW, SH, SW int
	PH, PW         int
}

// OH returns the output height ⌊(H + 2·PH − KH) / SH⌋ + 1.
func (g ConvGeom) OH() int { return (g.H+2*g.PH-g.KH)/g.SH + 1 }

// OW returns the output width ⌊(W + 2·PW − KW) / SW⌋ + 1.
func (g ConvGeom) OW() int { return (g.W+2*g.PW-g.KW)/g.SW + 1 }

// Rows returns C·KH·KW, the row count of the im2col matrix.
func (g ConvGeom) Rows() int { return g.C * g.KH * g.KW }

// Validate reports a geometry that cannot be computed.
func (g ConvGeom) Validate() error {
	switch {
	case g.C <= 0 || g.H <= 0 || g.W <= 0:
		return fmt.Errorf("%w: input (%d, %d, %d) must be positive", ErrShape, g.C, g.H, g.W)
	case g.KH <= 0 || g.KW <= 0:
		return fmt.Errorf("%w: kernel %dx%d must be positive", ErrShape, g.KH, g.KW)
	case g.SH <= 0 || g.SW <= 0:
		return fmt.Errorf("%w: stride %dx%d must be positive", ErrShape, g.SH, g.SW)
	case g.PH < 0 || g.PW < 0:
		return fmt.Errorf("%w: padding %dx%d must not be negative", ErrShape, g.PH, g.PW)
	case g.H+2*g.PH < g.KH || g.W+2*g.PW < g.KW:
		return fmt.Errorf("%w: kernel %dx%d is larger than the padded input %dx%d", ErrShape, g.KH, g.KW, g.H+2*g.PH, g.W+2*g.PW)
	}
	return nil
}

// PoolGeom is the geometry of a 2-D max-pool over (H, W) planes.
type PoolGeom struct {
	H, W           int
	KH, KW, SH, SW int
}

// OH returns the output height ⌊(H − KH) / SH⌋ + 1.
func (g PoolGeom) OH() int { return (g.H-g.KH)/g.SH + 1 }

// OW returns the output width ⌊(W − KW) / SW⌋ + 1.
func (g PoolGeom) OW() int { return (g.W-g.KW)/g.SW + 1 }

// Validate reports a geometry that cannot be computed.
func (g PoolGeom) Validate() error {
	switch {
	case g.H <= 0 || g.W <= 0:
		return fmt.Errorf("%w: pool input %dx%d must be positive", ErrShape, g.H, g.W)
	case g.KH <= 0 || g.KW <= 0 || g.SH <= 0 || g.SW <= 0:
		return fmt.Errorf("%w: pool window %dx%d and stride %dx%d must be positive", ErrShape, g.KH, g.KW, g.SH, g.SW)
	case g.KH > g.H || g.KW > g.W:
		return fmt.Errorf("%w: pool window %dx%d is larger than the input %dx%d", ErrShape, g.KH, g.KW, g.H, g.W)
	}
	return nil
}
