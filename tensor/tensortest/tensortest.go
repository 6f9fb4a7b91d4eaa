// Package tensortest is the correctness suite every tensor backend must pass.
// Run checks each kernel of a backend against tensor.Reference on random
// inputs of many shapes (odd sizes, every transpose combination, strides and
// padding), with guard values around every output buffer to catch writes out
// of bounds.
package tensortest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/maas-ml/maas/tensor"
)

// guard is written around output buffers; a kernel that writes past its
// output changes it.
const guard = -7.0625e9

const guardLen = 17

// buffer is an output slice with guard values on both sides.
type buffer struct {
	all  []float32
	data []float32
}

func newBuffer(n int, fill func(i int) float32) buffer {
	all := make([]float32, n+2*guardLen)
	for i := range all {
		all[i] = guard
	}
	data := all[guardLen : guardLen+n : guardLen+n]
	for i := range data {
		data[i] = fill(i)
	}
	return buffer{all: all, data: data}
}

func (b buffer) checkGuards(t *testing.T, what string) {
	t.Helper()
	for i := 0; i < guardLen; i++ {
		if b.all[i] != guard || b.all[len(b.all)-1-i] != guard {
			t.Fatalf("%s: wrote outside its output buffer", what)
		}
	}
}

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// Sizes are the dimensions the suite sweeps: edge cases around the usual
// micro-tile and vector widths.
var Sizes = []int{1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 65}

// Run checks every kernel of b against tensor.Reference.
func Run(t *testing.T, b tensor.Backend) {
	t.Run("Gemm", func(t *testing.T) { testGemm(t, b) })
	t.Run("GemmLarge", func(t *testing.T) { testGemmLarge(t, b) })
	t.Run("Conv", func(t *testing.T) { testConv(t, b) })
	t.Run("Conv2D", func(t *testing.T) { testConv2D(t, b) })
	t.Run("Conv2DBackward", func(t *testing.T) { testConv2DBackward(t, b) })
	t.Run("Activations", func(t *testing.T) { testActivations(t, b) })
	t.Run("GemmPacked", func(t *testing.T) { testGemmPacked(t, b) })
	t.Run("Bias", func(t *testing.T) { testBias(t, b) })
	t.Run("Transpose021", func(t *testing.T) { testTranspose(t, b) })
	t.Run("Relu", func(t *testing.T) { testRelu(t, b) })
	t.Run("MaxPool", func(t *testing.T) { testMaxPool(t, b) })
	t.Run("Softmax", func(t *testing.T) { testSoftmax(t, b) })
	t.Run("Reductions", func(t *testing.T) { testReductions(t, b) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, b) })
}

// closeTo reports whether got matches want within a tolerance scaled by
// scale (the magnitude of the terms that were summed).
func closeTo(got, want, scale float64, tol float64) bool {
	if math.IsNaN(got) || math.IsNaN(want) {
		return math.IsNaN(got) && math.IsNaN(want)
	}
	return math.Abs(got-want) <= tol*(1+scale)
}

func gemmCase(t *testing.T, b tensor.Backend, r *rand.Rand, transA, transB bool, m, n, k int, alpha, beta float32) {
	t.Helper()
	// Leading dimensions larger than needed, to test strides.
	rowsA, colsA := m, k
	if transA {
		rowsA, colsA = k, m
	}
	rowsB, colsB := k, n
	if transB {
		rowsB, colsB = n, k
	}
	lda, ldb, ldc := colsA+1, colsB+2, n+3
	a := randSlice(r, max(rowsA*lda, 1))
	bb := randSlice(r, max(rowsB*ldb, 1))
	c0 := randSlice(r, m*ldc)
	want := referenceGemm(transA, transB, m, n, k, alpha, a, lda, bb, ldb, beta, c0, ldc)
	got := newBuffer(len(c0), func(i int) float32 { return c0[i] })
	b.Gemm(transA, transB, m, n, k, alpha, a, lda, bb, ldb, beta, got.data, ldc)
	name := fmt.Sprintf("Gemm(tA=%v tB=%v m=%d n=%d k=%d alpha=%g beta=%g)", transA, transB, m, n, k, alpha, beta)
	got.checkGuards(t, name)
	for i := 0; i < m; i++ {
		for j := 0; j < ldc; j++ {
			g, w := got.data[i*ldc+j], want[i*ldc+j]
			if j >= n { // padding between rows must be untouched
				if g != c0[i*ldc+j] {
					t.Fatalf("%s: wrote C[%d,%d] past column n", name, i, j)
				}
				continue
			}
			if !closeTo(float64(g), float64(w), math.Sqrt(float64(k))*3, 1e-5) {
				t.Fatalf("%s: C[%d,%d] = %g, want %g", name, i, j, g, w)
			}
		}
	}
}

// refCache keeps reference GEMM results, so that the suite run on several
// backends computes each naive product once.
var refCache sync.Map

type gemmKey struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	sum            float64 // of the inputs: same shape, same data
}

func referenceGemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c0 []float32, ldc int) []float32 {
	key := gemmKey{transA, transB, m, n, k, alpha, beta, 0}
	for i, s := range [][]float32{a, b, c0} {
		for j, v := range s {
			key.sum += float64(v) * float64((i+1)*(j%97+1))
		}
	}
	if v, ok := refCache.Load(key); ok {
		return v.([]float32)
	}
	want := append([]float32(nil), c0...)
	tensor.Reference.Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, want, ldc)
	refCache.Store(key, want)
	return want
}

func testGemm(t *testing.T, b tensor.Backend) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			for _, m := range Sizes {
				for _, n := range []int{1, 3, 4, 7, 17, 65} {
					for _, k := range []int{1, 2, 5, 16, 33} {
						gemmCase(t, b, r, tA, tB, m, n, k, 1, 0)
					}
				}
			}
			gemmCase(t, b, r, tA, tB, 9, 13, 7, 0.5, 1)
			gemmCase(t, b, r, tA, tB, 9, 13, 7, -2, 0.25)
			gemmCase(t, b, r, tA, tB, 5, 6, 0, 1, 0.5) // k = 0 scales C only
		}
	}
}

// testGemmLarge crosses the cache-blocking boundaries and the parallel split.
func testGemmLarge(t *testing.T, b tensor.Backend) {
	r := rand.New(rand.NewPCG(3, 4))
	// The first three and the last two are over the 16 MFLOP a call needs
	// to be split across cores (by columns, or by rows where m > n).
	for _, s := range [][3]int{{130, 1030, 260}, {600, 75, 300}, {64, 1100, 300}, {257, 75, 300}, {300, 200, 64}, {1, 2000, 300}, {3, 9400, 300}, {700, 130, 100}} {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				gemmCase(t, b, r, tA, tB, s[0], s[1], s[2], 1, 0.5)
			}
		}
	}
	// beta = 0 must overwrite, even NaN.
	m, n, k := 9, 10, 11
	a, bb := randSlice(r, m*k), randSlice(r, k*n)
	c := make([]float32, m*n)
	for i := range c {
		c[i] = float32(math.NaN())
	}
	b.Gemm(false, false, m, n, k, 1, a, k, bb, n, 0, c, n)
	for i, v := range c {
		if math.IsNaN(float64(v)) {
			t.Fatalf("Gemm with beta=0 kept NaN at %d", i)
		}
	}
}

var convGeoms = []tensor.ConvGeom{
	{C: 1, H: 5, W: 5, KH: 3, KW: 3, SH: 1, SW: 1, PH: 1, PW: 1},
	{C: 2, H: 7, W: 6, KH: 3, KW: 2, SH: 2, SW: 1, PH: 0, PW: 1},
	{C: 3, H: 8, W: 9, KH: 5, KW: 5, SH: 2, SW: 3, PH: 2, PW: 2},
	{C: 4, H: 4, W: 4, KH: 1, KW: 1, SH: 1, SW: 1},
	{C: 2, H: 3, W: 3, KH: 3, KW: 3, SH: 1, SW: 1, PH: 2, PW: 2},
	{C: 5, H: 14, W: 14, KH: 3, KW: 3, SH: 1, SW: 1, PH: 1, PW: 1},
	{C: 1, H: 1, W: 1, KH: 1, KW: 1, SH: 1, SW: 1},
	// Stride 1 with output rows as wide as the input's (the shifted-plane
	// paths): kernels wider than the image, padding wider than a row, output
	// rows that read only padding, more or fewer output rows than input rows.
	{C: 2, H: 6, W: 4, KH: 1, KW: 3, SH: 1, SW: 1, PH: 0, PW: 1},
	{C: 1, H: 2, W: 1, KH: 3, KW: 3, SH: 1, SW: 1, PH: 1, PW: 1},
	{C: 1, H: 4, W: 2, KH: 5, KW: 5, SH: 1, SW: 1, PH: 2, PW: 2},
	{C: 1, H: 3, W: 7, KH: 3, KW: 7, SH: 1, SW: 1, PH: 0, PW: 3},
	{C: 2, H: 5, W: 6, KH: 4, KW: 3, SH: 1, SW: 1, PH: 0, PW: 1},
	{C: 1, H: 3, W: 3, KH: 1, KW: 3, SH: 1, SW: 1, PH: 2, PW: 1},
}

func testConv(t *testing.T, b tensor.Backend) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, g := range convGeoms {
		for _, n := range []int{1, 3} {
			name := fmt.Sprintf("%+v n=%d", g, n)
			x := randSlice(r, n*g.C*g.H*g.W)
			cols := g.Rows() * n * g.OH() * g.OW()
			want := make([]float32, cols)
			tensor.Reference.Im2Col(g, n, x, want)
			got := newBuffer(cols, func(int) float32 { return 99 })
			b.Im2Col(g, n, x, got.data)
			got.checkGuards(t, "Im2Col "+name)
			for i := range want {
				if got.data[i] != want[i] {
					t.Fatalf("Im2Col %s: col[%d] = %g, want %g", name, i, got.data[i], want[i])
				}
			}
			col := randSlice(r, cols)
			wantX := make([]float32, len(x))
			tensor.Reference.Col2Im(g, n, col, wantX)
			gotX := newBuffer(len(x), func(int) float32 { return 99 })
			b.Col2Im(g, n, col, gotX.data)
			gotX.checkGuards(t, "Col2Im "+name)
			for i := range wantX {
				if !closeTo(float64(gotX.data[i]), float64(wantX[i]), float64(g.KH*g.KW), 1e-6) {
					t.Fatalf("Col2Im %s: x[%d] = %g, want %g", name, i, gotX.data[i], wantX[i])
				}
			}
			// Adjointness: <Im2Col(x), col> = <x, Col2Im(col)>.
			lhs := tensor.Reference.Dot(got.data, col)
			rhs := tensor.Reference.Dot(x, gotX.data)
			if !closeTo(float64(lhs), float64(rhs), math.Abs(float64(lhs)), 1e-4) {
				t.Fatalf("Col2Im %s is not the adjoint of Im2Col: %g vs %g", name, lhs, rhs)
			}
		}
	}
}

// testConv2D checks the fused forward convolution against the direct one,
// with and without bias and ReLU, on geometries that
// cover the packing blocks (rows > 256, outputs > 1024) and the splits
// across cores (by image and, for small batches, by output columns).
func testConv2D(t *testing.T, b tensor.Backend) {
	r := rand.New(rand.NewPCG(21, 22))
	geoms := append(convGeoms[:len(convGeoms):len(convGeoms)],
		tensor.ConvGeom{C: 32, H: 14, W: 14, KH: 3, KW: 3, SH: 1, SW: 1, PH: 1, PW: 1},
		tensor.ConvGeom{C: 1, H: 40, W: 40, KH: 3, KW: 3, SH: 1, SW: 1, PH: 1, PW: 1},
	)
	for _, g := range geoms {
		for _, n := range []int{1, 2, 3} {
			for _, oc := range []int{1, 7, 64} {
				for _, mode := range []struct{ bias, relu bool }{{true, true}, {false, false}, {true, false}, {false, true}} {
					name := fmt.Sprintf("%+v n=%d oc=%d %+v", g, n, oc, mode)
					x, w := randSlice(r, n*g.C*g.H*g.W), randSlice(r, oc*g.Rows())
					var bias []float32
					if mode.bias {
						bias = randSlice(r, oc)
					}
					p := g.OH() * g.OW()
					want := make([]float32, n*oc*p)
					tensor.Reference.Conv2D(g, n, x, &tensor.Packed{W: w, Rows: oc, K: g.Rows(), Left: true}, bias, mode.relu, want)
					got := newBuffer(len(want), func(int) float32 { return float32(math.NaN()) })
					// Packed by b, or not packed at all: the same results.
					pw := &tensor.Packed{W: w, Rows: oc, K: g.Rows(), Left: true}
					if mode.relu {
						b.Pack(pw)
					}
					b.Conv2D(g, n, x, pw, bias, mode.relu, got.data)
					got.checkGuards(t, "Conv2D "+name)
					assertClose(t, "Conv2D "+name, got.data, want, math.Sqrt(float64(g.Rows())), 1e-5)
				}
			}
		}
	}
}

// testConv2DBackward checks the convolution's gradients against direct
// loops over the convolution's definition (dx scattered output by output,
// independent of Col2Im), accumulating into dw and db, with and without dx,
// on the forward pass's geometries and batch splits.
func testConv2DBackward(t *testing.T, b tensor.Backend) {
	r := rand.New(rand.NewPCG(25, 26))
	geoms := append(convGeoms[:len(convGeoms):len(convGeoms)],
		tensor.ConvGeom{C: 32, H: 14, W: 14, KH: 3, KW: 3, SH: 1, SW: 1, PH: 1, PW: 1},
	)
	for _, g := range geoms {
		for _, n := range []int{1, 2, 5} {
			for _, oc := range []int{1, 7, 64} {
				for _, withDx := range []bool{true, false} {
					name := fmt.Sprintf("%+v n=%d oc=%d dx=%v", g, n, oc, withDx)
					oh, ow := g.OH(), g.OW()
					p, rows, size := oh*ow, g.Rows(), g.C*g.H*g.W
					x, w, dy := randSlice(r, n*size), randSlice(r, oc*rows), randSlice(r, n*oc*p)
					dw0, db0 := randSlice(r, oc*rows), randSlice(r, oc)
					wantDw, wantDb := make([]float64, oc*rows), make([]float64, oc)
					wantDx := make([]float64, n*size)
					for o := range oc {
						wantDb[o] = float64(db0[o])
						for r := range rows {
							wantDw[o*rows+r] = float64(dw0[o*rows+r])
						}
					}
					for i := range n {
						for o := range oc {
							for y := range oh {
								for xo := range ow {
									d := float64(dy[(i*oc+o)*p+y*ow+xo])
									wantDb[o] += d
									for c := range g.C {
										for kh := range g.KH {
											for kw := range g.KW {
												ih, iw := y*g.SH+kh-g.PH, xo*g.SW+kw-g.PW
												if ih < 0 || ih >= g.H || iw < 0 || iw >= g.W {
													continue
												}
												row := (c*g.KH+kh)*g.KW + kw
												px := (i*g.C+c)*g.H*g.W + ih*g.W + iw
												wantDw[o*rows+row] += d * float64(x[px])
												wantDx[px] += d * float64(w[o*rows+row])
											}
										}
									}
								}
							}
						}
					}
					dw := newBuffer(len(dw0), func(i int) float32 { return dw0[i] })
					db := newBuffer(len(db0), func(i int) float32 { return db0[i] })
					var dx buffer
					if withDx {
						dx = newBuffer(n*size, func(int) float32 { return float32(math.NaN()) })
					}
					b.Conv2DBackward(g, n, x, w, dy, dw.data, db.data, dx.data)
					dw.checkGuards(t, "Conv2DBackward dw "+name)
					db.checkGuards(t, "Conv2DBackward db "+name)
					scale := math.Sqrt(float64(n * p))
					assertClose(t, "Conv2DBackward dw "+name, dw.data, f32(wantDw), scale, 1e-5)
					assertClose(t, "Conv2DBackward db "+name, db.data, f32(wantDb), scale, 1e-5)
					if withDx {
						dx.checkGuards(t, "Conv2DBackward dx "+name)
						assertClose(t, "Conv2DBackward dx "+name, dx.data, f32(wantDx), math.Sqrt(float64(oc*g.KH*g.KW)), 1e-5)
					}
				}
			}
		}
	}
}

// testActivations checks Sigmoid and Tanh against float64 math, in place
// and not, on lengths 0…40 (vector bodies and tails) with guards, over
// inputs from tiny to saturating: within 2e-7 absolute, and for tanh also
// 2e-7 relative to the value (so tanh(x) ≈ x keeps its digits near 0).
func testActivations(t *testing.T, b tensor.Backend) {
	r := rand.New(rand.NewPCG(27, 28))
	special := []float32{0, 1e-30, -1e-8, 1e-4, -0.3, 0.62, 0.625, -0.63, 1, -2.5, 9, -20, 44, 87, -88, 100, -1000}
	for n := 0; n <= 40; n++ {
		x := make([]float32, n)
		for i := range x {
			switch {
			case i < len(special) && n > 20:
				x[i] = special[i]
			default:
				x[i] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(5)-3)))
			}
		}
		for _, f := range []struct {
			name  string
			apply func(x, y []float32)
			exact func(float64) float64
			rel   bool
		}{
			{"Sigmoid", b.Sigmoid, func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }, false},
			{"Tanh", b.Tanh, math.Tanh, true},
		} {
			for _, inPlace := range []bool{false, true} {
				y := newBuffer(n, func(int) float32 { return float32(math.NaN()) })
				src := x
				if inPlace {
					copy(y.data, x)
					src = y.data
				}
				f.apply(src, y.data)
				y.checkGuards(t, f.name)
				for i, v := range x {
					want := f.exact(float64(v))
					err := math.Abs(float64(y.data[i]) - want)
					if err > 2e-7 && !(f.rel && err <= 2e-7*math.Abs(want)) || f.rel && math.Abs(want) < 1e-3 && err > 2e-7*math.Abs(want) {
						t.Fatalf("%s(%g) = %g, want %g (n=%d, in place %v)", f.name, v, y.data[i], want, n, inPlace)
					}
				}
			}
		}
	}
}

// f32 rounds float64 values to float32.
func f32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// testGemmPacked checks products with a packed right operand, packed by
// b, by another backend, or not at all, against Gemm.
func testGemmPacked(t *testing.T, b tensor.Backend) {
	r := rand.New(rand.NewPCG(23, 24))
	other := tensor.NewPureGo(1)
	defer other.Close()
	for _, m := range []int{1, 3, 7, 64} {
		for _, s := range [][2]int{{1, 1}, {10, 17}, {128, 300}, {33, 1152}} {
			rows, k := s[0], s[1]
			a, w := randSlice(r, m*(k+2)), randSlice(r, rows*k)
			c0 := randSlice(r, m*rows)
			want := append([]float32(nil), c0...)
			tensor.Reference.Gemm(false, true, m, rows, k, 0.5, a, k+2, w, k, 2, want, rows)
			for _, packer := range []tensor.Backend{nil, b, other} {
				name := fmt.Sprintf("GemmPacked m=%d rows=%d k=%d packer=%v", m, rows, k, packer)
				pw := &tensor.Packed{W: w, Rows: rows, K: k}
				if packer != nil {
					packer.Pack(pw)
				}
				got := newBuffer(len(c0), func(i int) float32 { return c0[i] })
				b.GemmPacked(m, 0.5, a, k+2, pw, 2, got.data, rows)
				got.checkGuards(t, name)
				assertClose(t, name, got.data, want, math.Sqrt(float64(k)), 1e-5)
			}
		}
	}
}

func testBias(t *testing.T, b tensor.Backend) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, s := range [][3]int{{1, 1, 1}, {3, 5, 1}, {2, 7, 9}, {1, 17, 33}, {64, 10, 1}} {
		outer, c, inner := s[0], s[1], s[2]
		x, bias := randSlice(r, outer*c*inner), randSlice(r, c)
		want := append([]float32(nil), x...)
		tensor.Reference.AddBias(want, bias, outer, inner)
		got := newBuffer(len(x), func(i int) float32 { return x[i] })
		b.AddBias(got.data, bias, outer, inner)
		got.checkGuards(t, "AddBias")
		assertClose(t, fmt.Sprintf("AddBias%v", s), got.data, want, 1, 1e-6)

		db0 := randSlice(r, c)
		want = append([]float32(nil), db0...)
		tensor.Reference.SumBias(x, want, outer, inner)
		gotDB := newBuffer(c, func(i int) float32 { return db0[i] })
		b.SumBias(x, gotDB.data, outer, inner)
		gotDB.checkGuards(t, "SumBias")
		assertClose(t, fmt.Sprintf("SumBias%v", s), gotDB.data, want, float64(outer*inner), 1e-5)
	}
}

func testTranspose(t *testing.T, b tensor.Backend) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, s := range [][3]int{{1, 1, 1}, {2, 3, 4}, {5, 1, 7}, {17, 9, 1}, {3, 64, 49}} {
		src := randSlice(r, s[0]*s[1]*s[2])
		want := make([]float32, len(src))
		tensor.Reference.Transpose021(src, want, s[0], s[1], s[2])
		got := newBuffer(len(src), func(int) float32 { return 0 })
		b.Transpose021(src, got.data, s[0], s[1], s[2])
		got.checkGuards(t, "Transpose021")
		assertClose(t, fmt.Sprintf("Transpose021%v", s), got.data, want, 0, 0)
	}
}

func testRelu(t *testing.T, b tensor.Backend) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, n := range Sizes {
		x := randSlice(r, n)
		x[0] = 0
		want := make([]float32, n)
		tensor.Reference.Relu(x, want)
		got := newBuffer(n, func(int) float32 { return 5 })
		b.Relu(x, got.data)
		got.checkGuards(t, "Relu")
		assertClose(t, "Relu", got.data, want, 0, 0)
		inPlace := append([]float32(nil), x...)
		b.Relu(inPlace, inPlace)
		assertClose(t, "Relu in place", inPlace, want, 0, 0)

		dy := randSlice(r, n)
		wantDX := make([]float32, n)
		tensor.Reference.ReluBackward(dy, want, wantDX)
		gotDX := newBuffer(n, func(int) float32 { return 5 })
		b.ReluBackward(dy, want, gotDX.data)
		gotDX.checkGuards(t, "ReluBackward")
		assertClose(t, "ReluBackward", gotDX.data, wantDX, 0, 0)
	}
}

func testMaxPool(t *testing.T, b tensor.Backend) {
	r := rand.New(rand.NewPCG(13, 14))
	geoms := []tensor.PoolGeom{
		{H: 4, W: 4, KH: 2, KW: 2, SH: 2, SW: 2},
		{H: 7, W: 7, KH: 2, KW: 2, SH: 2, SW: 2},   // odd: last row/column dropped
		{H: 14, W: 14, KH: 2, KW: 2, SH: 2, SW: 2}, // 49 outputs a plane: groups of 8 planes
		{H: 4, W: 28, KH: 2, KW: 2, SH: 2, SW: 2},  // rows of 14: 8, then 6 under a mask
		{H: 5, W: 23, KH: 2, KW: 2, SH: 2, SW: 2},  // rows of 11, last row and column dropped
		{H: 6, W: 37, KH: 2, KW: 2, SH: 2, SW: 2},  // 18 outputs a row: vector and scalar parts
		{H: 5, W: 6, KH: 3, KW: 2, SH: 1, SW: 2},
		{H: 9, W: 9, KH: 3, KW: 3, SH: 2, SW: 2}, // overlapping windows
		{H: 1, W: 1, KH: 1, KW: 1, SH: 1, SW: 1},
	}
	for _, g := range geoms {
		for _, planes := range []int{1, 3, 10, 171} { // 171: split across cores
			name := fmt.Sprintf("MaxPool %+v planes=%d", g, planes)
			x := randSlice(r, planes*g.H*g.W)
			if len(x) > 3 {
				x[1] = x[0] // a tie: the first index wins
			}
			out := planes * g.OH() * g.OW()
			want, wantIdx := make([]float32, out), make([]int32, out)
			tensor.Reference.MaxPool(g, planes, x, want, wantIdx)
			got := newBuffer(out, func(int) float32 { return 0 })
			gotIdx := make([]int32, out)
			b.MaxPool(g, planes, x, got.data, gotIdx)
			got.checkGuards(t, name)
			assertClose(t, name, got.data, want, 0, 0)
			noIdx := newBuffer(out, func(int) float32 { return 0 })
			b.MaxPool(g, planes, x, noIdx.data, nil)
			noIdx.checkGuards(t, name+" without idx")
			assertClose(t, name+" without idx", noIdx.data, want, 0, 0)
			for i := range wantIdx {
				if gotIdx[i] != wantIdx[i] {
					t.Fatalf("%s: idx[%d] = %d, want %d", name, i, gotIdx[i], wantIdx[i])
				}
			}
			// After a ReLU most windows tie at zero: the first one wins.
			xr := make([]float32, len(x))
			for i, v := range x {
				xr[i] = max(v, 0)
			}
			wantR, wantRIdx := make([]float32, out), make([]int32, out)
			tensor.Reference.MaxPool(g, planes, xr, wantR, wantRIdx)
			gotR, gotRIdx := make([]float32, out), make([]int32, out)
			b.MaxPool(g, planes, xr, gotR, gotRIdx)
			assertClose(t, name+" after ReLU", gotR, wantR, 0, 0)
			for i := range wantRIdx {
				if gotRIdx[i] != wantRIdx[i] {
					t.Fatalf("%s after ReLU: idx[%d] = %d, want %d", name, i, gotRIdx[i], wantRIdx[i])
				}
			}
			dy := randSlice(r, out)
			wantDX := make([]float32, len(x))
			tensor.Reference.MaxPoolBackward(g, planes, dy, wantIdx, wantDX)
			gotDX := newBuffer(len(x), func(int) float32 { return 3 })
			b.MaxPoolBackward(g, planes, dy, wantIdx, gotDX.data)
			gotDX.checkGuards(t, name+" backward")
			assertClose(t, name+" backward", gotDX.data, wantDX, 1, 1e-6)
		}
	}
}

func testSoftmax(t *testing.T, b tensor.Backend) {
	r := rand.New(rand.NewPCG(15, 16))
	for _, rows := range []int{1, 3, 64} {
		for _, cols := range []int{1, 2, 10, 33} {
			x := randSlice(r, rows*cols)
			x[0] = 80 // large logits must not overflow
			want := make([]float32, len(x))
			tensor.Reference.Softmax(x, want, rows, cols)
			got := newBuffer(len(x), func(int) float32 { return 0 })
			b.Softmax(x, got.data, rows, cols)
			got.checkGuards(t, "Softmax")
			assertClose(t, fmt.Sprintf("Softmax %dx%d", rows, cols), got.data, want, 0, 1e-6)
			b.Softmax(x, x, rows, cols)
			assertClose(t, "Softmax in place", x, want, 0, 1e-6)

			wantArg := make([]int32, rows)
			tensor.Reference.Argmax(want, rows, cols, wantArg)
			gotArg := make([]int32, rows)
			b.Argmax(want, rows, cols, gotArg)
			for i := range wantArg {
				if gotArg[i] != wantArg[i] {
					t.Fatalf("Argmax row %d = %d, want %d", i, gotArg[i], wantArg[i])
				}
			}
		}
	}
}

func testReductions(t *testing.T, b tensor.Backend) {
	r := rand.New(rand.NewPCG(17, 18))
	for _, n := range append(Sizes, 1000, 4099) {
		x, y := randSlice(r, n), randSlice(r, n)
		if g, w := b.Sum(x), tensor.Reference.Sum(x); !closeTo(float64(g), float64(w), math.Sqrt(float64(n)), 1e-5) {
			t.Fatalf("Sum(n=%d) = %g, want %g", n, g, w)
		}
		if g, w := b.Dot(x, y), tensor.Reference.Dot(x, y); !closeTo(float64(g), float64(w), math.Sqrt(float64(n)), 1e-5) {
			t.Fatalf("Dot(n=%d) = %g, want %g", n, g, w)
		}
		want := append([]float32(nil), y...)
		tensor.Reference.Axpy(-0.75, x, want)
		got := newBuffer(n, func(i int) float32 { return y[i] })
		b.Axpy(-0.75, x, got.data)
		got.checkGuards(t, "Axpy")
		assertClose(t, "Axpy", got.data, want, 1, 1e-6)

		tensor.Reference.Scale(1.5, want)
		b.Scale(1.5, got.data)
		got.checkGuards(t, "Scale")
		assertClose(t, "Scale", got.data, want, 1, 1e-6)
	}
}

// testConcurrent calls the backend from several goroutines at once; run
// under -race it also checks the kernels share no unsynchronised state.
func testConcurrent(t *testing.T, b tensor.Backend) {
	const m, n, k = 70, 90, 110
	r := rand.New(rand.NewPCG(19, 20))
	a, bb := randSlice(r, m*k), randSlice(r, k*n)
	want := make([]float32, m*n)
	tensor.Reference.Gemm(false, true, m, n, k, 1, a, k, bb, k, 0, want, n)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := make([]float32, m*n)
			for it := 0; it < 5; it++ {
				b.Gemm(false, true, m, n, k, 1, a, k, bb, k, 0, c, n)
				for i := range c {
					if !closeTo(float64(c[i]), float64(want[i]), 30, 1e-5) {
						errs <- fmt.Sprintf("concurrent Gemm: C[%d] = %g, want %g", i, c[i], want[i])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

func assertClose(t *testing.T, name string, got, want []float32, scale, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	for i := range want {
		if !closeTo(float64(got[i]), float64(want[i]), scale, tol) {
			t.Fatalf("%s: [%d] = %g, want %g", name, i, got[i], want[i])
		}
	}
}
