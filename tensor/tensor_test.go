package tensor_test

import (
	"fmt"
	"testing"

	"go.uber.org/goleak"

	"github.com/maas-ml/maas/tensor"
	"github.com/maas-ml/maas/tensor/tensortest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/maas-ml/maas/tensor.(*workerPool).work"))
}

func TestGoBackend(t *testing.T) {
	for _, threads := range []int{1, 2, 3} {
		for _, b := range []*tensor.GoBackend{tensor.NewGo(threads), tensor.NewPureGo(threads)} {
			t.Run(fmt.Sprintf("%s/threads=%d", b.Name(), threads), func(t *testing.T) { tensortest.Run(t, b) })
			b.Close()
		}
	}
}

func TestDefaultBackend(t *testing.T) { tensortest.Run(t, tensor.Default()) }

// TestReferenceByHand pins the oracle itself to values computed by hand.
func TestReferenceByHand(t *testing.T) {
	r := tensor.Reference
	// [1 2; 3 4] · [5 6; 7 8] = [19 22; 43 50]
	c := make([]float32, 4)
	r.Gemm(false, false, 2, 2, 2, 1, []float32{1, 2, 3, 4}, 2, []float32{5, 6, 7, 8}, 2, 0, c, 2)
	assertEqual(t, "Gemm", c, []float32{19, 22, 43, 50})
	// Aᵀ·Bᵀ with A = [1 3; 2 4], B = [5 7; 6 8] is the same product.
	r.Gemm(true, true, 2, 2, 2, 1, []float32{1, 3, 2, 4}, 2, []float32{5, 7, 6, 8}, 2, 0, c, 2)
	assertEqual(t, "GemmTT", c, []float32{19, 22, 43, 50})

	// A 3x3 image, 2x2 kernel, stride 1, no padding: 4 rows of 4 columns.
	g := tensor.ConvGeom{C: 1, H: 3, W: 3, KH: 2, KW: 2, SH: 1, SW: 1}
	col := make([]float32, 16)
	r.Im2Col(g, 1, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}, col)
	assertEqual(t, "Im2Col", col, []float32{1, 2, 4, 5, 2, 3, 5, 6, 4, 5, 7, 8, 5, 6, 8, 9})
	x := make([]float32, 9)
	ones := []float32{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}
	r.Col2Im(g, 1, ones, x)
	assertEqual(t, "Col2Im", x, []float32{1, 2, 1, 2, 4, 2, 1, 2, 1}) // how many windows cover each pixel

	y, idx := make([]float32, 1), make([]int32, 1)
	r.MaxPool(tensor.PoolGeom{H: 2, W: 2, KH: 2, KW: 2, SH: 2, SW: 2}, 1, []float32{1, 9, 3, 9}, y, idx)
	if y[0] != 9 || idx[0] != 1 {
		t.Fatalf("MaxPool = %v at %v, want 9 at 1", y[0], idx[0])
	}
	sm := make([]float32, 2)
	r.Softmax([]float32{0, 0}, sm, 1, 2)
	assertEqual(t, "Softmax", sm, []float32{0.5, 0.5})
}

func assertEqual(t *testing.T, name string, got, want []float32) {
	t.Helper()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s = %v, want %v", name, got, want)
		}
	}
}

func TestShapes(t *testing.T) {
	if _, err := tensor.FromData(make([]float32, 5), 2, 3); err == nil {
		t.Fatal("FromData accepted 5 values for shape (2, 3)")
	}
	x := tensor.New(2, 3)
	if err := x.Reshape(3, 2); err != nil {
		t.Fatal(err)
	}
	if err := x.Reshape(4, 2); err == nil {
		t.Fatal("Reshape changed the element count")
	}
	if err := (tensor.ConvGeom{C: 1, H: 2, W: 2, KH: 3, KW: 3, SH: 1, SW: 1}).Validate(); err == nil {
		t.Fatal("a 3x3 kernel on a 2x2 input without padding validated")
	}
}
