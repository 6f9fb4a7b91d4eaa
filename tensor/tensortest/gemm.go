package tensortest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/maas-ml/maas/tensor"
)

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
