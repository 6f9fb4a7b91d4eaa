// gemm.cu: a plain GEMM, one thread per output. The CUDA backend's
// products go through cuBLAS; this kernel is what the host emulation of
// the backend uses in cuBLAS's place (the tests on machines without a
// GPU), and a readable statement of what cuBLAS is asked for.
#include "maas_cuda.h"

// maas_gemm computes, row-major, for every i < m, j < n:
//
//	C[i,j] = alpha·Σ_p opA[i,p]·opB[p,j] + beta·C[i,j]
//
// summing in double; beta = 0 overwrites C.
extern "C" __global__ void maas_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
	int t = maas_gid();
	if (t >= m * n)
		return;
	int i = t / n, j = t % n;
	double s = 0.0;
	for (int p = 0; p < k; p++) {
		float av = trans_a ? a[(long)p * lda + i] : a[(long)i * lda + p];
		float bv = trans_b ? b[(long)j * ldb + p] : b[(long)p * ldb + j];
		s += (double)av * (double)bv;
	}
	float v = alpha * (float)s;
	if (beta != 0.0f)
		v += beta * c[(long)i * ldc + j];
	c[(long)i * ldc + j] = v;
}
MAAS_HOST_ENTRY(maas_gemm)
