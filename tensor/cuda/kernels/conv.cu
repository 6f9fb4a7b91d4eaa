// conv.cu: the epilogue of a convolution's forward GEMM.
#include "maas_cuda.h"

// maas_conv_bias_relu writes y (n, OC, P) from the GEMM's output yc (OC,
// n·P), one thread per output, adding bias[o] (when bias is not null) and
// applying max(·, 0) when relu is not 0:
//
//	y[i, o, q] = relu(yc[o, i·P + q] + bias[o])
extern "C" __global__ void maas_conv_bias_relu(const float *yc, const float *bias, float *y, int n, int oc, int p, int relu) {
	int t = maas_gid();
	if (t >= n * oc * p)
		return;
	int q = t % p, o = t / p % oc, i = t / (p * oc);
	float v = yc[(o * n + i) * p + q];
	if (bias)
		v += bias[o];
	if (relu)
		v = v > 0.0f ? v : 0.0f;
	y[t] = v;
}
MAAS_HOST_ENTRY(maas_conv_bias_relu)
