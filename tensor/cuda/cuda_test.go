package cuda

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maas-ml/maas/tensor"
	"github.com/maas-ml/maas/tensor/tensortest"
)

// openGPUOrSkip opens cuda:0, or skips t with the loader's error when the
// machine has no NVIDIA driver, GPU or cuBLAS.
func openGPUOrSkip(t *testing.T) *Backend {
	t.Helper()
	b, err := Open("cuda", Options{})
	if err != nil {
		if errors.Is(err, ErrNoDriver) || errors.Is(err, ErrNoDevice) || errors.Is(err, ErrNoCUBLAS) {
			t.Skip(err.Error()) // "cuda: cannot load ..."
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("running on %s", b.Device())
	return b
}

// TestGPU runs the shared correctness suite on the GPU.
func TestGPU(t *testing.T) {
	tensortest.Run(t, openGPUOrSkip(t))
}

// TestGPUGraph captures a scale and an axpy on device buffers and replays
// them: x ← 2x, then y += x, three times.
func TestGPUGraph(t *testing.T) {
	b := openGPUOrSkip(t)
	const n = 1000
	x, y := make([]float32, n), make([]float32, n)
	for i := range x {
		x[i], y[i] = float32(i), 1
	}
	bx, err := b.NewBuffer(n)
	if err != nil {
		t.Fatal(err)
	}
	by, err := b.NewBuffer(n)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Upload(bx, x); err != nil {
		t.Fatal(err)
	}
	if err := b.Upload(by, y); err != nil {
		t.Fatal(err)
	}
	g, err := b.Capture(func() error {
		return b.call(func() error {
			b.run(kScale, n, f32(2), ptr(bx.Ptr()), i32(n))
			b.run(kAxpy, n, f32(1), ptr(bx.Ptr()), ptr(by.Ptr()), i32(n))
			err := b.err
			b.err = nil
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for range 3 {
		if err := g.Launch(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Download(y, by); err != nil {
		t.Fatal(err)
	}
	for i, v := range y {
		if want := 1 + 14*float32(i); v != want { // 2i + 4i + 8i
			t.Fatalf("y[%d] = %g after 3 replays, want %g", i, v, want)
		}
	}
	if err := b.Free(bx); err != nil {
		t.Fatal(err)
	}
	if err := b.Free(by); err != nil {
		t.Fatal(err)
	}
}

// TestOpenWithoutDriver points the loader at a file that is not a library:
// Open must fail with ErrNoDriver and say what it tried and how to fix it.
func TestOpenWithoutDriver(t *testing.T) {
	bogus := filepath.Join(t.TempDir(), "libcuda.so.1")
	if err := os.WriteFile(bogus, []byte("not a library"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MAAS_CUDA_LIB", bogus)
	_, err := Open("cuda:0", Options{})
	if !errors.Is(err, ErrNoDriver) {
		t.Fatalf("Open with a bogus driver: %v, want ErrNoDriver", err)
	}
	for _, want := range []string{"libcuda.so.1", bogus, "MAAS_CUDA_LIB", "Install the NVIDIA driver"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestLibraryCandidates(t *testing.T) {
	env := map[string]string{"LD_LIBRARY_PATH": "/opt/a::/opt/b"}
	got := cublasLib.candidates(func(k string) string { return env[k] })
	if got[0] != "/opt/a/libcublas.so" || got[len(cublasLib.names)] != "/opt/b/libcublas.so" {
		t.Errorf("LD_LIBRARY_PATH not searched first: %v", got[:8])
	}
	if last := got[len(got)-len(cublasLib.names):]; last[1] != "libcublas.so.13" || last[2] != "libcublas.so.12" {
		t.Errorf("plain sonames not tried last: %v", last)
	}
	if !strings.Contains(strings.Join(got, " "), "/usr/local/cuda/lib64/libcublas.so") {
		t.Errorf("the CUDA toolkit directory is not searched: %v", got)
	}
	env["MAAS_CUBLAS_LIB"] = "/x/libcublas.so.99"
	if got := cublasLib.candidates(func(k string) string { return env[k] }); len(got) != 1 || got[0] != "/x/libcublas.so.99" {
		t.Errorf("the override is not the only candidate: %v", got)
	}
}

func TestParseDevice(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
		err  bool
	}{
		{"cuda", 0, false}, {"cuda:0", 0, false}, {"cuda:3", 3, false},
		{"cuda:", 0, true}, {"cuda:-1", 0, true}, {"cuda:x", 0, true}, {"gpu", 0, true}, {"CUDA", 0, true},
	} {
		got, err := ParseDevice(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("ParseDevice(%q) = %d, %v", c.in, got, err)
		}
		if err != nil && !errors.Is(err, ErrBadDevice) {
			t.Errorf("ParseDevice(%q): %v is not ErrBadDevice", c.in, err)
		}
	}
	err := checkOrdinal(2, 2)
	if !errors.Is(err, ErrNoDevice) || !strings.Contains(err.Error(), "has 2 GPU(s)") || !strings.Contains(err.Error(), "cuda:0 to cuda:1") {
		t.Errorf("checkOrdinal(2, 2) = %v", err)
	}
	if err := checkOrdinal(0, 0); !errors.Is(err, ErrNoDevice) {
		t.Errorf("checkOrdinal(0, 0) = %v", err)
	}
	if err := checkOrdinal(1, 2); err != nil {
		t.Errorf("checkOrdinal(1, 2) = %v", err)
	}
}

func TestErrorMessages(t *testing.T) {
	e := &Error{Op: "cuMemAlloc_v2", Code: 2, Name: "CUDA_ERROR_OUT_OF_MEMORY", Desc: "out of memory"}
	if got := e.Error(); got != "cuda: cuMemAlloc_v2: CUDA_ERROR_OUT_OF_MEMORY (out of memory)" {
		t.Error(got)
	}
	if !errors.Is(&Error{Op: "cuInit", Code: 100}, ErrNoDevice) || errors.Is(e, ErrNoDevice) {
		t.Error("CUDA_ERROR_NO_DEVICE must match ErrNoDevice, and only it")
	}
	if got := (&BLASError{Op: "cublasSgemm_v2", Status: 7}).Error(); !strings.Contains(got, "CUBLAS_STATUS_INVALID_VALUE") {
		t.Error(got)
	}
}

// colMajorSgemm is cublasSgemm's definition on column-major arrays: C =
// alpha·op(A)·op(B) + beta·C, op(A) (m, k), op(B) (k, n), C (m, n).
func colMajorSgemm(ta, tb int32, m, n, k int32, alpha float32, a []float32, lda int32, b []float32, ldb int32, beta float32, c []float32, ldc int32) {
	for j := range n {
		for i := range m {
			var s float32
			for p := range k {
				var av, bv float32
				if ta == cublasOpT {
					av = a[i*lda+p]
				} else {
					av = a[p*lda+i] // A(i, p) is at i + p·lda
				}
				if tb == cublasOpT {
					bv = b[p*ldb+j]
				} else {
					bv = b[j*ldb+p]
				}
				s += av * bv
			}
			c[j*ldc+i] = alpha*s + beta*c[j*ldc+i]
		}
	}
}

// TestRowMajorGemm checks the operand swap that turns row-major products
// into cuBLAS's column-major ones, for the four transpose cases, against
// tensor.Reference, with cuBLAS's definition computed here.
func TestRowMajorGemm(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			m, n, k := 5, 7, 3
			rowsA, colsA := m, k
			if tA {
				rowsA, colsA = k, m
			}
			rowsB, colsB := k, n
			if tB {
				rowsB, colsB = n, k
			}
			lda, ldb, ldc := colsA+1, colsB+2, n+3
			a, bm, c := randFloats(r, rowsA*lda), randFloats(r, rowsB*ldb), randFloats(r, m*ldc)
			want := append([]float32(nil), c...)
			tensor.Reference.Gemm(tA, tB, m, n, k, 0.5, a, lda, bm, ldb, 2, want, ldc)
			g := rowMajorGemm(tA, tB, m, n, k, 0, lda, 1, ldb) // 0 and 1 stand for A and B
			ops := map[uintptr][]float32{0: a, 1: bm}
			colMajorSgemm(g.transA, g.transB, g.m, g.n, g.k, 0.5, ops[g.first], g.ldFirst, ops[g.second], g.ldSecond, 2, c, int32(ldc))
			assertNear(t, fmt.Sprintf("tA=%v tB=%v", tA, tB), c, want, 1e-5)
		}
	}
}
