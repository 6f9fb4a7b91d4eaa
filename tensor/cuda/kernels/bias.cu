// bias.cu: adding a per-channel bias and summing its gradient.
#include "maas_cuda.h"

// maas_add_bias adds bias[j] to x[o, j, i] of x (outer, c, inner), one
// thread per element.
extern "C" __global__ void maas_add_bias(float *x, const float *bias, int outer, int c, int inner) {
	int t = maas_gid();
	if (t >= outer * c * inner)
		return;
	x[t] += bias[t / inner % c];
}
MAAS_HOST_ENTRY(maas_add_bias)

// maas_sum_bias accumulates db[j] += Σ_o Σ_i dy[o, j, i], one thread per
// channel, summing in double.
extern "C" __global__ void maas_sum_bias(const float *dy, float *db, int outer, int c, int inner) {
	int j = maas_gid();
	if (j >= c)
		return;
	double s = 0.0;
	for (int o = 0; o < outer; o++)
		for (int i = 0; i < inner; i++)
			s += (double)dy[(o * c + j) * inner + i];
	db[j] += (float)s;
}
MAAS_HOST_ENTRY(maas_sum_bias)
