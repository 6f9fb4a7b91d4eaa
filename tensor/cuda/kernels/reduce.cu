// reduce.cu: sums and dot products in two passes: parts partial sums in
// double on the GPU, added on the host in a fixed order (deterministic, no
// atomics, no shared memory).
#include "maas_cuda.h"

// maas_partial_dot writes out[t] = Σ_{i ≡ t mod parts} x[i]·y[i] for each
// thread t < parts, or Σ x[i] when y is null.
extern "C" __global__ void maas_partial_dot(const float *x, const float *y, int n, int parts, double *out) {
	int t = maas_gid();
	if (t >= parts)
		return;
	double s = 0.0;
	if (y)
		for (int i = t; i < n; i += parts)
			s += (double)x[i] * (double)y[i];
	else
		for (int i = t; i < n; i += parts)
			s += (double)x[i];
	out[t] = s;
}
MAAS_HOST_ENTRY(maas_partial_dot)

// maas_axpy computes y += alpha·x.
extern "C" __global__ void maas_axpy(float alpha, const float *x, float *y, int n) {
	int t = maas_gid();
	if (t < n)
		y[t] += alpha * x[t];
}
MAAS_HOST_ENTRY(maas_axpy)

// maas_scale computes x *= alpha.
extern "C" __global__ void maas_scale(float alpha, float *x, int n) {
	int t = maas_gid();
	if (t < n)
		x[t] *= alpha;
}
MAAS_HOST_ENTRY(maas_scale)

// maas_fill sets x[i] = v.
extern "C" __global__ void maas_fill(float *x, int n, float v) {
	int t = maas_gid();
	if (t < n)
		x[t] = v;
}
MAAS_HOST_ENTRY(maas_fill)
