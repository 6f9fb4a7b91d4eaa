package cuda

// blas holds the cuBLAS functions this package calls.
type blas struct {
	cublasCreate      func(h *uintptr) int32
	cublasDestroy     func(h uintptr) int32
	cublasSetStream   func(h uintptr, s uintptr) int32
	cublasSetMathMode func(h uintptr, mode int32) int32
	cublasSgemm       func(h uintptr, ta, tb int32, m, n, k int32, alpha *float32, a uintptr, lda int32, b uintptr, ldb int32, beta *float32, c uintptr, ldc int32) int32
}

// cuBLAS enums.
const (
	cublasOpN              = 0
	cublasOpT              = 1
	cublasDefaultMath      = 0 // no TF32: full fp32 products
	cublasTF32TensorOpMath = 3
)

func (b *blas) bindings() []binding {
	return []binding{
		{&b.cublasCreate, "cublasCreate_v2"},
		{&b.cublasDestroy, "cublasDestroy_v2"},
		{&b.cublasSetStream, "cublasSetStream_v2"},
		{&b.cublasSetMathMode, "cublasSetMathMode"},
		{&b.cublasSgemm, "cublasSgemm_v2"},
	}
}

func blasCheck(op string, status int32) error {
	if status == 0 {
		return nil
	}
	return &BLASError{Op: op, Status: int(status)}
}

// gemmArgs are the arguments of the column-major cublasSgemm call that
// computes the row-major C (m, n) = alpha·op(A)·op(B) + beta·C: as
// column-major arrays the row-major A, B and C are Aᵀ, Bᵀ and Cᵀ, and
// Cᵀ = op(B)ᵀ·op(A)ᵀ, so the operands swap places (B first), keep their
// transpose flags and their strides, and m and n swap.
type gemmArgs struct {
	transA, transB int32 // cuBLAS's, for its first and second operand
	m, n, k        int32
	first, second  uintptr // B, then A
	ldFirst        int32
	ldSecond       int32
}

func rowMajorGemm(transA, transB bool, m, n, k int, a uintptr, lda int, b uintptr, ldb int) gemmArgs {
	op := func(t bool) int32 {
		if t {
			return cublasOpT
		}
		return cublasOpN
	}
	return gemmArgs{
		transA: op(transB), transB: op(transA),
		m: int32(n), n: int32(m), k: int32(k),
		first: b, ldFirst: int32(ldb),
		second: a, ldSecond: int32(lda),
	}
}
