// act.cu: elementwise activations and their gradients.
#include "maas_cuda.h"

// maas_relu writes y = max(x, 0); y may be x.
extern "C" __global__ void maas_relu(const float *x, float *y, int n) {
	int t = maas_gid();
	if (t < n)
		y[t] = x[t] > 0.0f ? x[t] : 0.0f;
}
MAAS_HOST_ENTRY(maas_relu)

// maas_relu_backward writes dx = dy where y > 0, else 0; dx may be dy.
extern "C" __global__ void maas_relu_backward(const float *dy, const float *y, float *dx, int n) {
	int t = maas_gid();
	if (t < n)
		dx[t] = y[t] > 0.0f ? dy[t] : 0.0f;
}
MAAS_HOST_ENTRY(maas_relu_backward)

// maas_sigmoid writes y = 1/(1 + exp(−x)); y may be x.
extern "C" __global__ void maas_sigmoid(const float *x, float *y, int n) {
	int t = maas_gid();
	if (t < n)
		y[t] = maas_sigmoidf(x[t]);
}
MAAS_HOST_ENTRY(maas_sigmoid)

// maas_tanh writes y = tanh(x); y may be x.
extern "C" __global__ void maas_tanh(const float *x, float *y, int n) {
	int t = maas_gid();
	if (t < n)
		y[t] = maas_tanhf(x[t]);
}
MAAS_HOST_ENTRY(maas_tanh)
