// optim.cu: optimizer updates, one thread per parameter, with the same
// float32 operations in the same order as package nn's SGD and Adam.
#include "maas_cuda.h"

// maas_sgd is nn.SGD's step:
//
//	g ← g + wd·θ
//	b ← g (first step), else b ← μ·b + damp·g   (buf not null)
//	g ← g + μ·b (nesterov), or g ← b
//	θ ← θ − lr·g
extern "C" __global__ void maas_sgd(float *params, const float *grads, float *buf, int n, float lr, float wd, float mu, float damp, int first, int nesterov) {
	int i = maas_gid();
	if (i >= n)
		return;
	float p = params[i], g = grads[i] + wd * p;
	if (buf) {
		float b = first ? g : mu * buf[i] + damp * g;
		buf[i] = b;
		g = nesterov ? g + mu * b : b;
	}
	params[i] = p - lr * g;
}
MAAS_HOST_ENTRY(maas_sgd)

// maas_adam is nn.Adam's step (AdamW when decoupled), with step = lr/(1−β1ᵗ),
// inv_sqrt_bc2 = 1/√(1−β2ᵗ), omb1 = 1−β1 and omb2 = 1−β2 computed on the
// host in float64 (tensor.NewAdamArgs), not from the float32 betas here:
//
//	θ ← θ·decay (decoupled), or g ← g + wd·θ
//	m ← β1·m + omb1·g;  v ← β2·v + omb2·g²
//	θ ← θ − step · m / (√v · inv_sqrt_bc2 + ε)
extern "C" __global__ void maas_adam(float *params, const float *grads, float *m, float *v, int n, float step, float inv_sqrt_bc2, float b1, float omb1, float b2, float omb2, float eps, float wd, float decay, int decoupled) {
	int i = maas_gid();
	if (i >= n)
		return;
	float p = params[i], g = grads[i];
	if (decoupled)
		p *= decay;
	else
		g += wd * p;
	float mi = b1 * m[i] + omb1 * g;
	float vi = b2 * v[i] + omb2 * g * g;
	m[i] = mi;
	v[i] = vi;
	float denom = __builtin_sqrtf(vi) * inv_sqrt_bc2 + eps;
	params[i] = p - step * mi / denom;
}
MAAS_HOST_ENTRY(maas_adam)
