// transpose.cu: swapping the outer two axes of a 3-D array.
#include "maas_cuda.h"

// maas_transpose021 writes dst (b, a, c) from src (a, b, c), one thread per
// dst element: dst[j, i, k] = src[i, j, k].
extern "C" __global__ void maas_transpose021(const float *src, float *dst, int a, int b, int c) {
	int t = maas_gid();
	if (t >= a * b * c)
		return;
	int k = t % c, i = t / c % a, j = t / (c * a);
	dst[t] = src[(i * b + j) * c + k];
}
MAAS_HOST_ENTRY(maas_transpose021)
