// maas_cuda.h: what the kernels in this folder share. The same sources
// compile two ways:
//
//   - for the GPU (the default): clang-14 -x cuda --cuda-device-only
//     -nocudainc -nocudalib, to the PTX committed in ../ptx. No CUDA
//     toolkit header is used; the builtins below are clang's.
//   - for the host (MAAS_HOST defined): clang-14 -x c++, into a shared
//     object the tests load (host_launch.cc runs a kernel once for every
//     block and thread of its grid, in order). This is how the index
//     math is checked on a machine without a GPU.
//
// Kernels are one thread per output element, with a 1-D grid of 1-D
// blocks: no shared memory, no __syncthreads and no atomics, so a
// sequential host loop over the threads computes what the GPU does.
// Libdevice is not linked, so the math functions are written here
// (Cephes' single-precision exp and log).
#ifndef MAAS_CUDA_H
#define MAAS_CUDA_H

#ifdef MAAS_HOST

#define __global__
#define __device__
#define MAAS_INLINE static inline

struct maas_dim3 {
	unsigned x, y, z;
};
// Set by the host launcher before each emulated thread runs.
extern thread_local maas_dim3 maas_thread_idx, maas_block_idx, maas_block_dim, maas_grid_dim;
#define MAAS_TID_X (maas_thread_idx.x)
#define MAAS_CTAID_X (maas_block_idx.x)
#define MAAS_NTID_X (maas_block_dim.x)
#define MAAS_NCTAID_X (maas_grid_dim.x)

// MAAS_HOST_ENTRY(k) defines k_host(gx, gy, gz, bx, by, bz, params): the
// emulated launch, taking its arguments as cuLaunchKernel does (params[i]
// points to the i-th argument).
#define MAAS_HOST_ENTRY(k) \
	extern "C" void k##_host(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, void **params) { \
		maas_launch(k, maas_dim3{gx, gy, gz}, maas_dim3{bx, by, bz}, params); \
	}

template <unsigned long... I>
struct maas_index_seq {};
template <unsigned long N, unsigned long... I>
struct maas_make_seq : maas_make_seq<N - 1, N - 1, I...> {};
template <unsigned long... I>
struct maas_make_seq<0, I...> {
	typedef maas_index_seq<I...> type;
};

template <typename... A, unsigned long... I>
static inline void maas_call(void (*k)(A...), void **params, maas_index_seq<I...>) {
	k(*static_cast<A *>(params[I])...);
}

// maas_launch runs k for every block and thread of the grid, one at a time.
template <typename... A>
static inline void maas_launch(void (*k)(A...), maas_dim3 grid, maas_dim3 block, void **params) {
	maas_grid_dim = grid;
	maas_block_dim = block;
	for (unsigned bz = 0; bz < grid.z; bz++)
		for (unsigned by = 0; by < grid.y; by++)
			for (unsigned bx = 0; bx < grid.x; bx++)
				for (unsigned tz = 0; tz < block.z; tz++)
					for (unsigned ty = 0; ty < block.y; ty++)
						for (unsigned tx = 0; tx < block.x; tx++) {
							maas_block_idx = maas_dim3{bx, by, bz};
							maas_thread_idx = maas_dim3{tx, ty, tz};
							maas_call(k, params, typename maas_make_seq<sizeof...(A)>::type());
						}
}

#else // the GPU

#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define MAAS_INLINE static __device__ inline
#define MAAS_TID_X (__nvvm_read_ptx_sreg_tid_x())
#define MAAS_CTAID_X (__nvvm_read_ptx_sreg_ctaid_x())
#define MAAS_NTID_X (__nvvm_read_ptx_sreg_ntid_x())
#define MAAS_NCTAID_X (__nvvm_read_ptx_sreg_nctaid_x())
#define MAAS_HOST_ENTRY(k)

#endif

// maas_gid is the thread's index in the 1-D grid. The Go side keeps every
// element count below 2^31.
MAAS_INLINE int maas_gid(void) { return (int)(MAAS_CTAID_X * MAAS_NTID_X + MAAS_TID_X); }

// maas_conv_geom is tensor.ConvGeom with the batch and output size, passed
// by value (12 int32, the layout the Go side writes).
struct maas_conv_geom {
	int n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow;
};

// maas_pool_geom is tensor.PoolGeom with the plane count and output size.
struct maas_pool_geom {
	int planes, h, w, kh, kw, sh, sw, oh, ow;
};

MAAS_INLINE float maas_bits_float(unsigned u) {
	float f;
	__builtin_memcpy(&f, &u, 4);
	return f;
}

MAAS_INLINE unsigned maas_float_bits(float f) {
	unsigned u;
	__builtin_memcpy(&u, &f, 4);
	return u;
}

// maas_expf is Cephes' expf: x clamped to [−87.34, 88], x = n·ln2 + r with
// |r| ≤ ln2/2 (ln2 split in two parts), exp(r) by a degree-6 polynomial,
// times 2ⁿ built in the exponent bits. Within 2 ulp of exp(x).
MAAS_INLINE float maas_expf(float x) {
	x = __builtin_fminf(x, 88.0f);
	x = __builtin_fmaxf(x, -87.33654f);
	float n = __builtin_floorf(__builtin_fmaf(x, 1.44269504088896341f, 0.5f));
	x = __builtin_fmaf(-n, 0.693359375f, x);
	x = __builtin_fmaf(-n, -2.12194440e-4f, x);
	float p = 1.9875691500e-4f;
	p = __builtin_fmaf(p, x, 1.3981999507e-3f);
	p = __builtin_fmaf(p, x, 8.3334519073e-3f);
	p = __builtin_fmaf(p, x, 4.1665795894e-2f);
	p = __builtin_fmaf(p, x, 1.6666665459e-1f);
	p = __builtin_fmaf(p, x, 5.0000001201e-1f);
	float y = __builtin_fmaf(p, x * x, x) + 1.0f;
	// 2ⁿ for n in [−126, 127]; n = 128 (x near 88) is split in two.
	int e = (int)n;
	if (e > 127) {
		y *= 2.0f;
		e--;
	}
	if (e < -126) {
		y *= maas_bits_float(1u << 23); // 2^-126
		e += 126;
	}
	return y * maas_bits_float((unsigned)(e + 127) << 23);
}

// maas_logf is Cephes' logf for x > 0: x = m·2ᵉ with m in [√½, √2),
// log(m) by a degree-8 polynomial in m − 1. log(0) is −inf.
MAAS_INLINE float maas_logf(float x) {
	if (x <= 0.0f)
		return -__builtin_inff();
	if (x == __builtin_inff())
		return x;
	int e = 0;
	unsigned u = maas_float_bits(x);
	if ((u >> 23) == 0) { // subnormal: scale into the normal range
		x *= 16777216.0f; // 2^24
		u = maas_float_bits(x);
		e = -24;
	}
	e += (int)(u >> 23) - 126;
	float m = maas_bits_float((u & 0x007fffffu) | 0x3f000000u); // in [0.5, 1)
	if (m < 0.707106781186547524f) {
		m = m + m - 1.0f;
		e--;
	} else {
		m = m - 1.0f;
	}
	float z = m * m;
	float p = 7.0376836292e-2f;
	p = __builtin_fmaf(p, m, -1.1514610310e-1f);
	p = __builtin_fmaf(p, m, 1.1676998740e-1f);
	p = __builtin_fmaf(p, m, -1.2420140846e-1f);
	p = __builtin_fmaf(p, m, 1.4249322787e-1f);
	p = __builtin_fmaf(p, m, -1.6668057665e-1f);
	p = __builtin_fmaf(p, m, 2.0000714765e-1f);
	p = __builtin_fmaf(p, m, -2.4999993993e-1f);
	p = __builtin_fmaf(p, m, 3.3333331174e-1f);
	float y = m * z * p;
	float fe = (float)e;
	y = __builtin_fmaf(fe, -2.12194440e-4f, y);
	y = __builtin_fmaf(-0.5f, z, y);
	return __builtin_fmaf(fe, 0.693359375f, m + y);
}

// maas_sigmoidf is 1/(1 + exp(−x)).
MAAS_INLINE float maas_sigmoidf(float x) { return 1.0f / (1.0f + maas_expf(-x)); }

// maas_tanhf is Cephes' tanhf: an odd polynomial below |x| = 0.625, else
// 1 − 2/(exp(2|x|) + 1) with x's sign.
MAAS_INLINE float maas_tanhf(float x) {
	float a = __builtin_fabsf(x);
	if (a < 0.625f) {
		float z = x * x;
		float p = -5.70498872745e-3f;
		p = __builtin_fmaf(p, z, 2.06390887954e-2f);
		p = __builtin_fmaf(p, z, -5.37397155531e-2f);
		p = __builtin_fmaf(p, z, 1.33314422036e-1f);
		p = __builtin_fmaf(p, z, -3.33332819422e-1f);
		return __builtin_fmaf(p * z, x, x);
	}
	float t = 1.0f - 2.0f / (maas_expf(a + a) + 1.0f);
	return __builtin_copysignf(t, x);
}

#endif
