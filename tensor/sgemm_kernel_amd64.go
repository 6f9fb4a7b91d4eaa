//go:build !noasm

package tensor

import "golang.org/x/sys/cpu"

// hasAVX2FMA reports whether the AVX2+FMA GEMM micro-kernel can run here.
var hasAVX2FMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// sgemmKernel6x16 is the AVX2+FMA micro-kernel, in sgemm_kernel_amd64.s:
//
//	for i < 6, j < 16: c[i·ldc+j] += alpha · Σ_{p<kb} a[p·6+i] · b[p·16+j]
//
//go:noescape
func sgemmKernel6x16(kb int, a, b, c *float32, ldc int, alpha float32)

func kernel6x16(kb int, a, b []float32, alpha float32, c []float32, ldc, rows, cols int) {
	a, b = a[:6*kb], b[:16*kb]
	if rows == 6 && cols == 16 {
		_ = c[5*ldc+15]
		sgemmKernel6x16(kb, &a[0], &b[0], &c[0], ldc, alpha)
		return
	}
	var tile [6 * 16]float32
	sgemmKernel6x16(kb, &a[0], &b[0], &tile[0], 16, alpha)
	for i := 0; i < rows; i++ {
		row := c[i*ldc : i*ldc+cols]
		for j := range row {
			row[j] += tile[i*16+j]
		}
	}
}

var simdKernel = &microKernel{name: "avx2", mr: 6, nr: 16, fn: kernel6x16}

// gather16 packs one 16-column panel of an implicit im2col matrix, in
// gather_amd64.s:
//
//	for p < kb, j < 16: dst[p·16+j] = src[rowOff[p] + colOff[j]]
//
//go:noescape
func gather16(dst, src *float32, rowOff *int32, kb int, colOff *int32)

// packShift16 packs one 16-column panel of a shifted-plane im2col matrix,
// in gather_amd64.s:
//
//	for p < kb, j < 16: dst[p·16+j] = masks[rowMask[p]+j] != 0 ? src[rowOff[p]+col+j] : 0
//
// The reads where the mask is 0 are not made (they may lie outside src).
//
//go:noescape
func packShift16(dst, src *float32, rowOff, rowMask *int32, masks *int32, kb, col int)

// hasGather16 reports whether gather16 may be used (it needs AVX2).
var hasGather16 = hasAVX2FMA

// reluAVX sets x[i] = max(x[i], 0) for i < n, n a multiple of 8, in
// elem_amd64.s.
//
//go:noescape
func reluAVX(x *float32, n int)

// maxPool2x2AVX writes y[j] = max(r0[2j], r0[2j+1], r1[2j], r1[2j+1]) for
// j < n, n a multiple of 8, in elem_amd64.s.
//
//go:noescape
func maxPool2x2AVX(y, r0, r1 *float32, n int)

// reluBackwardAVX writes dx[i] = dy[i] where !(y[i] <= 0), else 0, for
// i < n, n a multiple of 8, in elem_amd64.s.
//
//go:noescape
func reluBackwardAVX(dy, y, dx *float32, n int)

// maxPool2x2IdxAVX is maxPool2x2AVX that also records, in idx, the flat
// index of each maximum (the first on ties): base + 2j, +1 for the odd
// column, +w for the second row; n need not be a multiple of 8: masks is
// &poolTailMasks[n%8][0]. In elem_amd64.s.
//
//go:noescape
func maxPool2x2IdxAVX(y *float32, idx *int32, r0, r1 *float32, n int, base, w int32, masks *int32)

// maxPoolBackward2x2AVX writes one row of 2×2 windows of dx from dy and
// maxPool2x2IdxAVX's idx: for j < n, dx0[2j], dx0[2j+1], dx1[2j], dx1[2j+1]
// are dy[j] at the pixel whose flat index (base + 2j, +1 for the odd
// column, +w for dx1) is idx[j], else 0; masks is &poolTailMasks[n%8][0].
// In elem_amd64.s.
//
//go:noescape
func maxPoolBackward2x2AVX(dx0, dx1 *float32, dy *float32, idx *int32, n int, base, w int32, masks *int32)

// poolTailMasks[t] holds maxPool2x2IdxAVX's masks for a last group of t
// outputs: the first 2t lanes of 8, the first 2t − 8, the first t.
var poolTailMasks = func() (m [8][24]int32) {
	for t := range m {
		for l := range 8 {
			if l < 2*t {
				m[t][l] = -1
			}
			if l < 2*t-8 {
				m[t][8+l] = -1
			}
			if l < t {
				m[t][16+l] = -1
			}
		}
	}
	return m
}()

// maxPool2x2GatherAVX is maxPool2x2IdxAVX for windows anywhere in x: for
// j < n, n a multiple of 8, the window of y[j] starts at base + off[j], its
// second row w further on; in elem_amd64.s.
//
//go:noescape
func maxPool2x2GatherAVX(y *float32, idx *int32, x *float32, off *int32, n int, base, w int32)

// fillAVX sets x[i] = v for i < n, n a multiple of 8, in elem_amd64.s.
//
//go:noescape
func fillAVX(x *float32, n int, v float32)

// adamAVX is AdamStep's update for n a multiple of 8, in elem_amd64.s; c
// holds β1, 1−β1, β2, 1−β2, ε, step size, 1/√(1−β2ᵗ), wd, decay and
// decoupled (≠ 0).
//
//go:noescape
func adamAVX(p, grad, m, v *float32, n int, c *float32)

// pack16 copies a 16-column panel of a row-major matrix: dst[p·16+j] =
// src[p·ld+j] for p < kb, j < 16; in gather_amd64.s.
//
//go:noescape
func pack16(dst, src *float32, ld, kb int)

// packA6 packs a six-row panel of a row-major A: dst[p·6+i] =
// src[i·ld+p] for i < 6, p < 8·blocks, writing two floats past
// dst[48·blocks]; in gather_amd64.s.
//
//go:noescape
func packA6(dst, src *float32, ld, blocks int)

// packT16 packs a 16-column panel of a B stored transposed: dst[p·16+j] =
// src[j·ld+p] for p < 8·blocks, j < 16; in gather_amd64.s.
//
//go:noescape
func packT16(dst, src *float32, ld, blocks int)

// addAVX adds src to dst for n values, the last n mod 8 under mask, in
// elem_amd64.s; see addVec.
//
//go:noescape
func addAVX(dst, src *float32, n int, mask *int32)

// tailMask: &tailMask[8−r] is the mask of the first r of 8 lanes.
var tailMask = [16]int32{-1, -1, -1, -1, -1, -1, -1, -1}

// sigmoidAVX and tanhAVX apply the function in place to x[:n], n a
// multiple of 8, in act_amd64.s; see Sigmoid and Tanh.
//
//go:noescape
func sigmoidAVX(x *float32, n int)

//go:noescape
func tanhAVX(x *float32, n int)
