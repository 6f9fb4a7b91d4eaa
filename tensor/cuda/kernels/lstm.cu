// lstm.cu: the elementwise part of one LSTM time step, forward and
// backward, one thread per (sample, unit); the GEMMs around it go through
// cuBLAS. Gates are in PyTorch's order i, f, g, o along the 4H columns of
// a row, as in package nn's LSTM.
#include "maas_cuda.h"

// maas_lstm_forward takes a (n, 4H), the gate pre-activations of step t
// (x·W_ihᵀ + h_{t−1}·W_hhᵀ + biases), and c_{t−1} (n, H, null at t = 0):
//
//	a ← σ(i), σ(f), tanh(g), σ(o)      (in place)
//	c = f ⊙ c_{t−1} + i ⊙ g;  tc = tanh(c);  h = o ⊙ tc
extern "C" __global__ void maas_lstm_forward(float *a, const float *cprev, float *c, float *tc, float *h, int n, int hidden) {
	int t = maas_gid();
	if (t >= n * hidden)
		return;
	int i = t / hidden, j = t % hidden;
	float *row = a + (long)i * 4 * hidden;
	float ig = maas_sigmoidf(row[j]), fg = maas_sigmoidf(row[hidden + j]);
	float gg = maas_tanhf(row[2 * hidden + j]), og = maas_sigmoidf(row[3 * hidden + j]);
	row[j] = ig;
	row[hidden + j] = fg;
	row[2 * hidden + j] = gg;
	row[3 * hidden + j] = og;
	float cv = ig * gg;
	if (cprev)
		cv += fg * cprev[t];
	float tcv = maas_tanhf(cv);
	c[t] = cv;
	tc[t] = tcv;
	h[t] = og * tcv;
}
MAAS_HOST_ENTRY(maas_lstm_forward)

// maas_lstm_backward takes step t's activations a (n, 4H), tanh(c_t) tc
// (n, H), c_{t−1} (null at t = 0), dL/dh_t dh (n, H) and dL/dc_t from step
// t+1 dc (n, H), and writes the pre-activation gradients dz (n, 4H) and
// dc ← dL/dc_{t−1}:
//
//	dc' = dh·o·(1 − tc²) + dc
//	dz = dc'·g·i(1−i), dc'·c_{t−1}·f(1−f), dc'·i·(1−g²), dh·tc·o(1−o)
//	dc ← dc'·f
extern "C" __global__ void maas_lstm_backward(const float *a, const float *tc, const float *cprev, const float *dh, float *dc, float *dz, int n, int hidden) {
	int t = maas_gid();
	if (t >= n * hidden)
		return;
	int i = t / hidden, j = t % hidden;
	const float *row = a + (long)i * 4 * hidden;
	float *drow = dz + (long)i * 4 * hidden;
	float ig = row[j], fg = row[hidden + j], gg = row[2 * hidden + j], og = row[3 * hidden + j];
	float d = dh[t], tcv = tc[t];
	float dcv = d * og * (1.0f - tcv * tcv) + dc[t];
	float cp = cprev ? cprev[t] : 0.0f;
	drow[j] = dcv * gg * ig * (1.0f - ig);
	drow[hidden + j] = dcv * cp * fg * (1.0f - fg);
	drow[2 * hidden + j] = dcv * ig * (1.0f - gg * gg);
	drow[3 * hidden + j] = d * tcv * og * (1.0f - og);
	dc[t] = dcv * fg;
}
MAAS_HOST_ENTRY(maas_lstm_backward)
