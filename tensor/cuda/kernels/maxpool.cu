// maxpool.cu: max-pooling with argmax indices, forward and backward.
#include "maas_cuda.h"

// maas_maxpool pools x (planes, H, W) into y (planes, OH, OW), one thread
// per output, and writes the flat index into x of each maximum (the first
// on ties, scanning the window row by row) to idx when idx is not null.
extern "C" __global__ void maas_maxpool(maas_pool_geom g, const float *x, float *y, int *idx) {
	int t = maas_gid();
	if (t >= g.planes * g.oh * g.ow)
		return;
	int j = t % g.ow, i = t / g.ow % g.oh, p = t / (g.ow * g.oh);
	float best = 0.0f;
	int at = -1;
	for (int kh = 0; kh < g.kh; kh++)
		for (int kw = 0; kw < g.kw; kw++) {
			int k = (p * g.h + i * g.sh + kh) * g.w + j * g.sw + kw;
			if (at < 0 || x[k] > best) {
				best = x[k];
				at = k;
			}
		}
	y[t] = best;
	if (idx)
		idx[t] = at;
}
MAAS_HOST_ENTRY(maas_maxpool)

// maas_maxpool_backward overwrites dx (planes, H, W) with the sum of the
// dy[o] whose idx[o] is that pixel, one thread per pixel gathering over
// the windows that contain it in output order (the order the reference
// adds them in). idx must be what maas_maxpool wrote: each index lies in
// its own window.
extern "C" __global__ void maas_maxpool_backward(maas_pool_geom g, const float *dy, const int *idx, float *dx) {
	int t = maas_gid();
	if (t >= g.planes * g.h * g.w)
		return;
	int iw = t % g.w, ih = t / g.w % g.h, p = t / (g.w * g.h);
	// Output rows y with y·SH ≤ ih < y·SH + KH, columns likewise.
	int lo = ih - g.kh + 1, y0 = lo <= 0 ? 0 : (lo + g.sh - 1) / g.sh, y1 = ih / g.sh;
	int lx = iw - g.kw + 1, x0 = lx <= 0 ? 0 : (lx + g.sw - 1) / g.sw, x1 = iw / g.sw;
	if (y1 >= g.oh)
		y1 = g.oh - 1;
	if (x1 >= g.ow)
		x1 = g.ow - 1;
	float s = 0.0f;
	for (int y = y0; y <= y1; y++)
		for (int xo = x0; xo <= x1; xo++) {
			int o = (p * g.oh + y) * g.ow + xo;
			if (idx[o] == t)
				s += dy[o];
		}
	dx[t] = s;
}
MAAS_HOST_ENTRY(maas_maxpool_backward)
