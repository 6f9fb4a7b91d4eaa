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
