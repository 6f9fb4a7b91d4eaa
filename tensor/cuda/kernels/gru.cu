// gru.cu: the elementwise part of one GRU time step, forward and backward,
// one thread per (sample, unit). Gates are in PyTorch's order r, z, n
// along the 3H columns of a row, as in package nn's GRU.
#include "maas_cuda.h"

// maas_gru_forward takes a (n, 3H), the input half x·W_ihᵀ + b_ih of step
// t, hh (n, 3H) = h_{t−1}·W_hhᵀ + b_hh, and h_{t−1} (n, H, null at t = 0):
//
//	r = σ(a_r + hh_r);  z = σ(a_z + hh_z);  nv = tanh(a_n + r ⊙ hh_n)
//	a ← r, z, nv (in place);  hn = hh_n;  h = (1 − z) ⊙ nv + z ⊙ h_{t−1}
extern "C" __global__ void maas_gru_forward(float *a, const float *hh, const float *hprev, float *hn, float *h, int n, int hidden) {
	int t = maas_gid();
	if (t >= n * hidden)
		return;
	int i = t / hidden, j = t % hidden;
	float *row = a + (long)i * 3 * hidden;
	const float *hrow = hh + (long)i * 3 * hidden;
	float r = maas_sigmoidf(row[j] + hrow[j]);
	float z = maas_sigmoidf(row[hidden + j] + hrow[hidden + j]);
	float nv = maas_tanhf(row[2 * hidden + j] + r * hrow[2 * hidden + j]);
	row[j] = r;
	row[hidden + j] = z;
	row[2 * hidden + j] = nv;
	hn[t] = hrow[2 * hidden + j];
	float hv = (1.0f - z) * nv;
	if (hprev)
		hv += z * hprev[t];
	h[t] = hv;
}
MAAS_HOST_ENTRY(maas_gru_forward)

// maas_gru_backward takes step t's activations a (n, 3H), hn (n, H), h_{t−1}
// (null at t = 0) and dL/dh_t dh (n, H); it writes the gradients of the
// input half dzi and of the hidden half dzh (n, 3H), and adds dh·z into
// dprev = dL/dh_{t−1} (when not null):
//
//	dn = dh·(1 − z)·(1 − nv²);  dz = dh·(h_{t−1} − nv)·z(1 − z);  dr = dn·hn·r(1 − r)
//	dzi = dr, dz, dn;  dzh = dr, dz, dn·r
extern "C" __global__ void maas_gru_backward(const float *a, const float *hn, const float *hprev, const float *dh, float *dprev, float *dzi, float *dzh, int n, int hidden) {
	int t = maas_gid();
	if (t >= n * hidden)
		return;
	int i = t / hidden, j = t % hidden;
	const float *row = a + (long)i * 3 * hidden;
	float *irow = dzi + (long)i * 3 * hidden, *hrow = dzh + (long)i * 3 * hidden;
	float r = row[j], z = row[hidden + j], nv = row[2 * hidden + j];
	float d = dh[t], hp = 0.0f;
	if (hprev) {
		hp = hprev[t];
		if (dprev)
			dprev[t] += d * z;
	}
	float dn = d * (1.0f - z) * (1.0f - nv * nv);
	float dzv = d * (hp - nv) * z * (1.0f - z);
	float dr = dn * hn[t] * r * (1.0f - r);
	irow[j] = dr;
	irow[hidden + j] = dzv;
	irow[2 * hidden + j] = dn;
	hrow[j] = dr;
	hrow[hidden + j] = dzv;
	hrow[2 * hidden + j] = dn * r;
}
MAAS_HOST_ENTRY(maas_gru_backward)
