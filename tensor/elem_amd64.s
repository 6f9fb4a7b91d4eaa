//go:build !noasm

#include "textflag.h"

// func reluAVX(x *float32, n int)
//
// x[i] = max(x[i], 0) in place for i < n, n a multiple of 8. VMAXPS with
// zero as the first operand returns x for a NaN x, so NaNs pass through.
TEXT ·reluAVX(SB), NOSPLIT, $0-16
	MOVQ   x+0(FP), DI
	MOVQ   n+8(FP), CX
	SHRQ   $3, CX
	JEQ    done
	VXORPS Y0, Y0, Y0

loop:
	VMAXPS  (DI), Y0, Y1
	VMOVUPS Y1, (DI)
	ADDQ    $32, DI
	DECQ    CX
	JNZ     loop

done:
	VZEROUPPER
	RET

// func maxPool2x2AVX(y, r0, r1 *float32, n int)
//
// y[j] = max(r0[2j], r0[2j+1], r1[2j], r1[2j+1]) for j < n, n a multiple
// of 8: the vertical maximum of the two rows, then of each pair of
// neighbours (even and odd lanes split by VSHUFPS, put back in order by
// VPERMPD).
TEXT ·maxPool2x2AVX(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), DI
	MOVQ r0+8(FP), SI
	MOVQ r1+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	JEQ  pdone

ploop:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMAXPS  (DX), Y0, Y0
	VMAXPS  32(DX), Y1, Y1
	VSHUFPS $0x88, Y1, Y0, Y2
	VSHUFPS $0xDD, Y1, Y0, Y3
	VMAXPS  Y3, Y2, Y2
	VPERMPD $0xD8, Y2, Y2
	VMOVUPS Y2, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DX
	ADDQ    $32, DI
	DECQ    CX
	JNZ     ploop

pdone:
	VZEROUPPER
	RET

// func reluBackwardAVX(dy, y, dx *float32, n int)
//
// dx[i] = dy[i] where !(y[i] <= 0), else 0, for i < n, n a multiple of 8:
// the comparison NLE (true for a NaN y) matches the Go loop exactly.
TEXT ·reluBackwardAVX(SB), NOSPLIT, $0-32
	MOVQ   dy+0(FP), SI
	MOVQ   y+8(FP), DX
	MOVQ   dx+16(FP), DI
	MOVQ   n+24(FP), CX
	SHRQ   $3, CX
	JEQ    rbdone
	VXORPS Y0, Y0, Y0

rbloop:
	VMOVUPS (DX), Y1
	VCMPPS  $0x06, Y0, Y1, Y2
	VANDPS  (SI), Y2, Y3
	VMOVUPS Y3, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	DECQ    CX
	JNZ     rbloop

rbdone:
	VZEROUPPER
	RET

// Offsets of the first element of 8 neighbouring 2x2 windows in a row.
DATA evenOffsets<>+0(SB)/4, $0
DATA evenOffsets<>+4(SB)/4, $2
DATA evenOffsets<>+8(SB)/4, $4
DATA evenOffsets<>+12(SB)/4, $6
DATA evenOffsets<>+16(SB)/4, $8
DATA evenOffsets<>+20(SB)/4, $10
DATA evenOffsets<>+24(SB)/4, $12
DATA evenOffsets<>+28(SB)/4, $14
GLOBL evenOffsets<>(SB), RODATA|NOPTR, $32

// POOLINDICES sets, from the arguments base and w of a row of 2×2
// windows, Y15 to the indices of the first 8 windows' first elements
// (base + 2j), Y14 to w (one row down), Y13 to 1s (one column right) and
// Y12 to 16s (the next 8 windows).
#define POOLINDICES \
	MOVL         base+40(FP), AX;             \
	VMOVD        AX, X15;                     \
	VPBROADCASTD X15, Y15;                    \
	VPADDD       evenOffsets<>(SB), Y15, Y15; \
	MOVL         w+44(FP), AX;                \
	VMOVD        AX, X14;                     \
	VPBROADCASTD X14, Y14;                    \
	MOVL         $1, AX;                      \
	VMOVD        AX, X13;                     \
	VPBROADCASTD X13, Y13;                    \
	MOVL         $16, AX;                     \
	VMOVD        AX, X12;                     \
	VPBROADCASTD X12, Y12

// DEINTERLEAVE splits the 16 values of Y0, Y1 (two rows' worth of 2×2
// windows' columns) into the even ones, ev, and the odd ones, od.
#define DEINTERLEAVE(ev, od) \
	VSHUFPS $0x88, Y1, Y0, ev; \
	VSHUFPS $0xDD, Y1, Y0, od; \
	VPERMPD $0xD8, ev, ev;     \
	VPERMPD $0xD8, od, od

// POOLMAX takes the windows' values a b c d in Y2..Y5 (first row even, odd;
// second row even, odd) and the first elements' indices in Y15: the
// maximum goes to Y2, its index to Y6 (a, then b, c, d where strictly
// larger). Y13 holds 1s, Y14 the row width.
#define POOLMAX \
	VMOVDQU   Y15, Y6;          \
	VPADDD    Y13, Y15, Y7;     \
	VCMPPS    $0x1E, Y2, Y3, Y8; \
	VBLENDVPS Y8, Y3, Y2, Y2;   \
	VBLENDVPS Y8, Y7, Y6, Y6;   \
	VPADDD    Y14, Y15, Y7;     \
	VCMPPS    $0x1E, Y2, Y4, Y8; \
	VBLENDVPS Y8, Y4, Y2, Y2;   \
	VBLENDVPS Y8, Y7, Y6, Y6;   \
	VPADDD    Y13, Y7, Y7;      \
	VCMPPS    $0x1E, Y2, Y5, Y8; \
	VBLENDVPS Y8, Y5, Y2, Y2;   \
	VBLENDVPS Y8, Y7, Y6, Y6

// POOLPICK is POOLMAX's adjoint: with dy in Y0 and the maxima's indices
// in Y1, Y2..Y5 get dy at a, b, c, d where that is the maximum, else 0.
#define POOLPICK \
	VPCMPEQD Y15, Y1, Y2;  \
	VANDPS   Y0, Y2, Y2;   \
	VPADDD   Y13, Y15, Y6; \
	VPCMPEQD Y6, Y1, Y3;   \
	VANDPS   Y0, Y3, Y3;   \
	VPADDD   Y14, Y15, Y6; \
	VPCMPEQD Y6, Y1, Y4;   \
	VANDPS   Y0, Y4, Y4;   \
	VPADDD   Y13, Y6, Y6;  \
	VPCMPEQD Y6, Y1, Y5;   \
	VANDPS   Y0, Y5, Y5

// INTERLEAVE is DEINTERLEAVE's inverse: ev and od interleaved into Y8, Y9.
#define INTERLEAVE(ev, od) \
	VUNPCKLPS  od, ev, Y6;        \
	VUNPCKHPS  od, ev, Y7;        \
	VPERM2F128 $0x20, Y7, Y6, Y8; \
	VPERM2F128 $0x31, Y7, Y6, Y9

// func maxPool2x2IdxAVX(y *float32, idx *int32, r0, r1 *float32, n int, base, w int32, masks *int32)
//
// For j < n: y[j] is the maximum of r0[2j], r0[2j+1], r1[2j], r1[2j+1],
// the first in that order on ties (later ones win only when strictly
// larger, so NaNs never do), and idx[j] its flat index: base + 2j (+1 for
// the odd column) (+w for the second row). Eight at a time, then the last
// t = n mod 8 under masks: masks points at three 8-lane masks, of the
// first 2t, the first max(2t − 8, 0) and the first t lanes (masked lanes
// are neither read nor written).
TEXT ·maxPool2x2IdxAVX(SB), NOSPLIT, $0-56
	MOVQ         y+0(FP), DI
	MOVQ         idx+8(FP), R8
	MOVQ         r0+16(FP), SI
	MOVQ         r1+24(FP), DX
	MOVQ         n+32(FP), CX
	MOVQ         CX, BX
	ANDQ         $7, BX
	SHRQ         $3, CX
	POOLINDICES

	TESTQ CX, CX
	JEQ   pitail

piloop:
	// Even and odd columns of each row: a b (row 0), c d (row 1).
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	DEINTERLEAVE(Y2, Y3)
	VMOVUPS (DX), Y0
	VMOVUPS 32(DX), Y1
	DEINTERLEAVE(Y4, Y5)
	POOLMAX
	VMOVUPS Y2, (DI)
	VMOVDQU Y6, (R8)
	VPADDD  Y12, Y15, Y15
	ADDQ      $64, SI
	ADDQ      $64, DX
	ADDQ      $32, DI
	ADDQ      $32, R8
	DECQ      CX
	JNZ       piloop

pitail:
	TESTQ      BX, BX
	JEQ        pidone
	MOVQ       masks+48(FP), R9
	VMOVDQU    (R9), Y9
	VMOVDQU    32(R9), Y10
	VMASKMOVPS (SI), Y9, Y0
	VMASKMOVPS 32(SI), Y10, Y1
	DEINTERLEAVE(Y2, Y3)
	VMASKMOVPS (DX), Y9, Y0
	VMASKMOVPS 32(DX), Y10, Y1
	DEINTERLEAVE(Y4, Y5)
	POOLMAX
	VMOVDQU    64(R9), Y11
	VMASKMOVPS Y2, Y11, (DI)
	VPMASKMOVD Y6, Y11, (R8)

pidone:
	VZEROUPPER
	RET

// func maxPoolBackward2x2AVX(dx0, dx1 *float32, dy *float32, idx *int32, n int, base, w int32, masks *int32)
//
// The backward pass of maxPool2x2IdxAVX over one row of windows: for j < n
// it writes the window's four pixels, dx0[2j], dx0[2j+1] (the first row)
// and dx1[2j], dx1[2j+1] (the second), with dy[j] at the one whose flat
// index base + 2j (+1) (+w) is idx[j] and 0 at the others. Eight at a
// time, then the last n mod 8 under masks (as maxPool2x2IdxAVX's).
TEXT ·maxPoolBackward2x2AVX(SB), NOSPLIT, $0-56
	MOVQ         dx0+0(FP), DI
	MOVQ         dx1+8(FP), R10
	MOVQ         dy+16(FP), SI
	MOVQ         idx+24(FP), R8
	MOVQ         n+32(FP), CX
	MOVQ         CX, BX
	ANDQ         $7, BX
	SHRQ         $3, CX
	POOLINDICES
	TESTQ        CX, CX
	JEQ          pbtail

pbloop:
	VMOVUPS (SI), Y0 // dy
	VMOVDQU (R8), Y1 // idx
	POOLPICK
	// a b interleaved into the first row, c d into the second.
	INTERLEAVE(Y2, Y3)
	VMOVUPS Y8, (DI)
	VMOVUPS Y9, 32(DI)
	INTERLEAVE(Y4, Y5)
	VMOVUPS Y8, (R10)
	VMOVUPS Y9, 32(R10)
	VPADDD     Y12, Y15, Y15
	ADDQ       $32, SI
	ADDQ       $32, R8
	ADDQ       $64, DI
	ADDQ       $64, R10
	DECQ       CX
	JNZ        pbloop

pbtail:
	TESTQ      BX, BX
	JEQ        pbdone
	MOVQ       masks+48(FP), R9
	VMOVDQU    64(R9), Y11
	VMASKMOVPS (SI), Y11, Y0
	VPMASKMOVD (R8), Y11, Y1
	POOLPICK
	VMOVDQU    (R9), Y10
	VMOVDQU    32(R9), Y11
	INTERLEAVE(Y2, Y3)
	VMASKMOVPS Y8, Y10, (DI)
	VMASKMOVPS Y9, Y11, 32(DI)
	INTERLEAVE(Y4, Y5)
	VMASKMOVPS Y8, Y10, (R10)
	VMASKMOVPS Y9, Y11, 32(R10)

pbdone:
	VZEROUPPER
	RET

// func maxPool2x2GatherAVX(y *float32, idx *int32, x *float32, off *int32, n int, base, w int32)
//
// For j < n (a multiple of 8), with o = base + off[j]: y[j] is the maximum
// of x[o], x[o+1], x[o+w], x[o+w+1], the first in that order on ties, and
// idx[j] its index into x. The windows are gathered, so they may lie
// anywhere: rows of any width, planes of any height.
TEXT ·maxPool2x2GatherAVX(SB), NOSPLIT, $0-48
	MOVQ         y+0(FP), DI
	MOVQ         idx+8(FP), R8
	MOVQ         x+16(FP), SI
	MOVQ         off+24(FP), DX
	MOVQ         n+32(FP), CX
	SHRQ         $3, CX
	JEQ          pgdone
	MOVL         base+40(FP), AX
	VMOVD        AX, X15
	VPBROADCASTD X15, Y15 // base
	MOVL         w+44(FP), AX
	VMOVD        AX, X14
	VPBROADCASTD X14, Y14 // one row down
	MOVL         $1, AX
	VMOVD        AX, X13
	VPBROADCASTD X13, Y13 // one column right

pgloop:
	VPADDD     (DX), Y15, Y6 // ia
	VPADDD     Y13, Y6, Y7   // ib
	VPADDD     Y14, Y6, Y9   // ic
	VPADDD     Y13, Y9, Y10  // id
	VPCMPEQD   Y11, Y11, Y11
	VGATHERDPS Y11, (SI)(Y6*4), Y2 // a
	VPCMPEQD   Y11, Y11, Y11
	VGATHERDPS Y11, (SI)(Y7*4), Y3 // b
	VPCMPEQD   Y11, Y11, Y11
	VGATHERDPS Y11, (SI)(Y9*4), Y4 // c
	VPCMPEQD   Y11, Y11, Y11
	VGATHERDPS Y11, (SI)(Y10*4), Y5 // d

	// m = a, im = ia; then b, c, d replace it where strictly larger.
	VCMPPS    $0x1E, Y2, Y3, Y8 // b > m
	VBLENDVPS Y8, Y3, Y2, Y2
	VBLENDVPS Y8, Y7, Y6, Y6
	VCMPPS    $0x1E, Y2, Y4, Y8 // c > m
	VBLENDVPS Y8, Y4, Y2, Y2
	VBLENDVPS Y8, Y9, Y6, Y6
	VCMPPS    $0x1E, Y2, Y5, Y8 // d > m
	VBLENDVPS Y8, Y5, Y2, Y2
	VBLENDVPS Y8, Y10, Y6, Y6
	VMOVUPS   Y2, (DI)
	VMOVDQU   Y6, (R8)
	ADDQ      $32, DX
	ADDQ      $32, DI
	ADDQ      $32, R8
	DECQ      CX
	JNZ       pgloop

pgdone:
	VZEROUPPER
	RET

// func fillAVX(x *float32, n int, v float32)
//
// x[i] = v for i < n, n a multiple of 8.
TEXT ·fillAVX(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS v+16(FP), Y0
	SHRQ         $3, CX
	JEQ          filldone

fillloop:
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	DECQ    CX
	JNZ     fillloop

filldone:
	VZEROUPPER
	RET

// func addAVX(dst, src *float32, n int, mask *int32)
//
// dst[i] += src[i] for i < n: eight at a time, then the last n mod 8 under
// mask, which points at n mod 8 words of −1 followed by zeros (masked
// lanes are neither read nor written).
TEXT ·addAVX(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ mask+24(FP), DX
	MOVQ CX, BX
	ANDQ $7, BX
	SHRQ $3, CX
	JEQ  tail

loop:
	VMOVUPS (SI), Y0
	VADDPS  (DI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     loop

tail:
	TESTQ      BX, BX
	JEQ        done
	VMOVDQU    (DX), Y3
	VMASKMOVPS (SI), Y3, Y0
	VMASKMOVPS (DI), Y3, Y1
	VADDPS     Y1, Y0, Y0
	VMASKMOVPS Y0, Y3, (DI)

done:
	VZEROUPPER
	RET

// func adamAVX(p, grad, m, v *float32, n int, c *float32)
//
// AdamStep's update for i < n (a multiple of 8), with c = β1, 1−β1, β2,
// 1−β2, ε, step size, 1/√(1−β2ᵗ), wd, decay, decoupled (≠ 0): each
// operation separately rounded, in the order of the Go loop.
TEXT ·adamAVX(SB), NOSPLIT, $0-48
	MOVQ         p+0(FP), DI
	MOVQ         grad+8(FP), SI
	MOVQ         m+16(FP), R8
	MOVQ         v+24(FP), R9
	MOVQ         n+32(FP), CX
	MOVQ         c+40(FP), DX
	VBROADCASTSS (DX), Y8     // β1
	VBROADCASTSS 4(DX), Y9    // 1−β1
	VBROADCASTSS 8(DX), Y10   // β2
	VBROADCASTSS 12(DX), Y11  // 1−β2
	VBROADCASTSS 16(DX), Y12  // ε
	VBROADCASTSS 20(DX), Y13  // step size
	VBROADCASTSS 24(DX), Y14  // 1/√(1−β2ᵗ)
	VBROADCASTSS 28(DX), Y15  // wd
	VBROADCASTSS 32(DX), Y7   // decay
	MOVL         36(DX), AX   // decoupled
	SHRQ         $3, CX
	JEQ          adone

aloop:
	VMOVUPS (SI), Y0 // g
	VMOVUPS (DI), Y1 // θ
	TESTL   AX, AX
	JEQ     acoupled
	VMULPS  Y7, Y1, Y1 // θ·decay
	JMP     amoments

acoupled:
	VMULPS Y1, Y15, Y2 // wd·θ
	VADDPS Y2, Y0, Y0  // g + wd·θ

amoments:
	VMULPS  (R8), Y8, Y2 // β1·m
	VMULPS  Y0, Y9, Y3   // (1−β1)·g
	VADDPS  Y3, Y2, Y2   // m
	VMULPS  Y0, Y11, Y3  // (1−β2)·g
	VMULPS  Y0, Y3, Y3   // ·g
	VMULPS  (R9), Y10, Y4 // β2·v
	VADDPS  Y3, Y4, Y4    // v
	VMOVUPS Y2, (R8)
	VMOVUPS Y4, (R9)
	VSQRTPS Y4, Y4
	VMULPS  Y14, Y4, Y4 // √v/√(1−β2ᵗ)
	VADDPS  Y12, Y4, Y4 // + ε
	VMULPS  Y2, Y13, Y2 // step size·m
	VDIVPS  Y4, Y2, Y2
	VSUBPS  Y2, Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	ADDQ    $32, R8
	ADDQ    $32, R9
	DECQ    CX
	JNZ     aloop

adone:
	VZEROUPPER
	RET
