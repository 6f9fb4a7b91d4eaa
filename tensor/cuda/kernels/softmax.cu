// softmax.cu: softmax, its cross-entropy loss and gradient, and argmax.
#include "maas_cuda.h"

// maas_row_max_sum sets *m to the maximum of row (cols) and returns
// Σ exp(row[j] − m) in double.
MAAS_INLINE double maas_row_max_sum(const float *row, int cols, float *m) {
	float mx = row[0];
	for (int j = 1; j < cols; j++)
		mx = row[j] > mx ? row[j] : mx;
	double s = 0.0;
	for (int j = 0; j < cols; j++)
		s += (double)maas_expf(row[j] - mx);
	*m = mx;
	return s;
}

// maas_softmax writes y = softmax(x) row by row for x (rows, cols), one
// thread per row; y may be x.
extern "C" __global__ void maas_softmax(const float *x, float *y, int rows, int cols) {
	int r = maas_gid();
	if (r >= rows)
		return;
	const float *row = x + (long)r * cols;
	float m;
	double s = maas_row_max_sum(row, cols, &m);
	for (int j = 0; j < cols; j++)
		y[(long)r * cols + j] = (float)((double)maas_expf(row[j] - m) / s);
}
MAAS_HOST_ENTRY(maas_softmax)

// maas_softmax_xent is the softmax cross-entropy forward pass for logits x
// (rows, cols) and labels (rows), one thread per row: probs = softmax(x)
// and loss[r] = logsumexp(x_r) − x_r[labels[r]] (as (max − x_r[label]) +
// log Σ exp(x − max), which keeps the digits of small losses), +inf for a label outside
// [0, cols).
extern "C" __global__ void maas_softmax_xent(const float *x, const int *labels, float *probs, float *loss, int rows, int cols) {
	int r = maas_gid();
	if (r >= rows)
		return;
	const float *row = x + (long)r * cols;
	float m;
	double s = maas_row_max_sum(row, cols, &m);
	for (int j = 0; j < cols; j++)
		probs[(long)r * cols + j] = (float)((double)maas_expf(row[j] - m) / s);
	int y = labels[r];
	loss[r] = y < 0 || y >= cols ? __builtin_inff() : (m - row[y]) + maas_logf((float)s);
}
MAAS_HOST_ENTRY(maas_softmax_xent)

// maas_softmax_xent_backward writes dx = (probs − onehot(labels))·scale for
// probs (rows, cols), one thread per element (scale is 1/rows for a mean
// loss).
extern "C" __global__ void maas_softmax_xent_backward(const float *probs, const int *labels, float *dx, int rows, int cols, float scale) {
	int t = maas_gid();
	if (t >= rows * cols)
		return;
	float v = probs[t];
	if (labels[t / cols] == t % cols)
		v -= 1.0f;
	dx[t] = v * scale;
}
MAAS_HOST_ENTRY(maas_softmax_xent_backward)

// maas_argmax writes the column of each row's maximum (the first on ties)
// for x (rows, cols), one thread per row.
extern "C" __global__ void maas_argmax(const float *x, int rows, int cols, int *out) {
	int r = maas_gid();
	if (r >= rows)
		return;
	const float *row = x + (long)r * cols;
	int best = 0;
	for (int j = 1; j < cols; j++)
		if (row[j] > row[best])
			best = j;
	out[r] = best;
}
MAAS_HOST_ENTRY(maas_argmax)
