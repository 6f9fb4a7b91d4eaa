// im2col.cu: unfolding images into columns for the convolution GEMMs, and
// its adjoint. See tensor.Backend.Im2Col and Col2Im.
#include "maas_cuda.h"

// maas_im2col writes col (C·KH·KW, n·OH·OW) from x (n, C, H, W), one
// thread per col entry:
//
//	col[(c, kh, kw), (i, oh, ow)] = x[i, c, oh·SH+kh−PH, ow·SW+kw−PW], 0 in the padding
extern "C" __global__ void maas_im2col(maas_conv_geom g, const float *x, float *col) {
	int p = g.oh * g.ow, ld = g.n * p;
	int t = maas_gid();
	if (t >= g.c * g.kh * g.kw * ld)
		return;
	int row = t / ld, q = t % ld;
	int kw = row % g.kw, kh = row / g.kw % g.kh, c = row / (g.kw * g.kh);
	int i = q / p, y = q % p / g.ow, xo = q % g.ow;
	int ih = y * g.sh + kh - g.ph, iw = xo * g.sw + kw - g.pw;
	float v = 0.0f;
	if (ih >= 0 && ih < g.h && iw >= 0 && iw < g.w)
		v = x[((i * g.c + c) * g.h + ih) * g.w + iw];
	col[t] = v;
}
MAAS_HOST_ENTRY(maas_im2col)

// maas_col2im overwrites x (n, C, H, W) with the sum of the col entries
// im2col reads from each pixel, one thread per pixel gathering them in
// (kh, kw) order: no atomics, and the same sums, in the same order, as
// the reference's scatter.
extern "C" __global__ void maas_col2im(maas_conv_geom g, const float *col, float *x) {
	int p = g.oh * g.ow, ld = g.n * p;
	int t = maas_gid();
	if (t >= g.n * g.c * g.h * g.w)
		return;
	int iw = t % g.w, ih = t / g.w % g.h, c = t / (g.w * g.h) % g.c, i = t / (g.w * g.h * g.c);
	float s = 0.0f;
	for (int kh = 0; kh < g.kh; kh++) {
		int ty = ih + g.ph - kh; // = y·SH for the output row y that reads (ih, ·) with kh
		if (ty < 0 || ty % g.sh != 0 || ty / g.sh >= g.oh)
			continue;
		int y = ty / g.sh;
		for (int kw = 0; kw < g.kw; kw++) {
			int tx = iw + g.pw - kw;
			if (tx < 0 || tx % g.sw != 0 || tx / g.sw >= g.ow)
				continue;
			int row = (c * g.kh + kh) * g.kw + kw;
			s += col[row * ld + (i * g.oh + y) * g.ow + tx / g.sw];
		}
	}
	x[t] = s;
}
MAAS_HOST_ENTRY(maas_col2im)
