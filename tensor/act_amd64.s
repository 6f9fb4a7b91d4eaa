//go:build !noasm

#include "textflag.h"

// Vector sigmoid and tanh for the recurrent layers' gates.

DATA actConst<>+0(SB)/4, $0x3f800000 // one 1.0
DATA actConst<>+4(SB)/4, $0x3f000000 // half 0.5
DATA actConst<>+8(SB)/4, $0x42b00000 // exphi 88.0
DATA actConst<>+12(SB)/4, $0xc2aeac4f // explo -87.33654
DATA actConst<>+16(SB)/4, $0x3fb8aa3b // log2e 1.4426950408889634
DATA actConst<>+20(SB)/4, $0x3f318000 // c1 0.693359375
DATA actConst<>+24(SB)/4, $0xb95e8083 // c2 -0.00021219444
DATA actConst<>+28(SB)/4, $0x39506967 // p0 0.000198756915
DATA actConst<>+32(SB)/4, $0x3ab743ce // p1 0.0013981999507
DATA actConst<>+36(SB)/4, $0x3c088908 // p2 0.0083334519073
DATA actConst<>+40(SB)/4, $0x3d2aa9c1 // p3 0.041665795894
DATA actConst<>+44(SB)/4, $0x3e2aaaaa // p4 0.16666665459
DATA actConst<>+48(SB)/4, $0x3f000000 // p5 0.50000001201
DATA actConst<>+52(SB)/4, $0x0000007f // bias
DATA actConst<>+56(SB)/4, $0x80000000 // sign
DATA actConst<>+60(SB)/4, $0x7fffffff // abs
DATA actConst<>+64(SB)/4, $0x3f200000 // small 0.625
DATA actConst<>+68(SB)/4, $0xbbbaf0ea // t0 -0.00570498872745
DATA actConst<>+72(SB)/4, $0x3ca9134e // t1 0.0206390887954
DATA actConst<>+76(SB)/4, $0xbd5c1e2d // t2 -0.0537397155531
DATA actConst<>+80(SB)/4, $0x3e088393 // t3 0.133314422036
DATA actConst<>+84(SB)/4, $0xbeaaaa99 // t4 -0.333332819422
DATA actConst<>+88(SB)/4, $0x40000000 // two 2.0
GLOBL actConst<>(SB), RODATA|NOPTR, $92

// EXP8 sets Y0 = exp(Y0) for 8 lanes (Cephes expf: x clamped to
// [−87.34, 88], x = n·ln2 + r with |r| ≤ ln2/2 split in two parts for
// precision, exp(r) by a degree-6 polynomial, times 2ⁿ built in the
// exponent bits). It clobbers Y1–Y5.
#define EXP8 \
	VBROADCASTSS actConst<>+8(SB), Y1 \
	VMINPS       Y1, Y0, Y0 \
	VBROADCASTSS actConst<>+12(SB), Y1 \
	VMAXPS       Y1, Y0, Y0 \
	VBROADCASTSS actConst<>+16(SB), Y1 \
	VBROADCASTSS actConst<>+4(SB), Y2 \
	VFMADD213PS  Y2, Y0, Y1 \
	VROUNDPS     $1, Y1, Y1 \
	VBROADCASTSS actConst<>+20(SB), Y2 \
	VFNMADD231PS Y2, Y1, Y0 \
	VBROADCASTSS actConst<>+24(SB), Y2 \
	VFNMADD231PS Y2, Y1, Y0 \
	VMULPS       Y0, Y0, Y3 \
	VBROADCASTSS actConst<>+28(SB), Y4 \
	VBROADCASTSS actConst<>+32(SB), Y5 \
	VFMADD213PS  Y5, Y0, Y4 \
	VBROADCASTSS actConst<>+36(SB), Y5 \
	VFMADD213PS  Y5, Y0, Y4 \
	VBROADCASTSS actConst<>+40(SB), Y5 \
	VFMADD213PS  Y5, Y0, Y4 \
	VBROADCASTSS actConst<>+44(SB), Y5 \
	VFMADD213PS  Y5, Y0, Y4 \
	VBROADCASTSS actConst<>+48(SB), Y5 \
	VFMADD213PS  Y5, Y0, Y4 \
	VFMADD213PS  Y0, Y3, Y4 \
	VBROADCASTSS actConst<>+0(SB), Y5 \
	VADDPS       Y5, Y4, Y4 \
	VCVTPS2DQ    Y1, Y1 \
	VPBROADCASTD actConst<>+52(SB), Y5 \
	VPADDD       Y5, Y1, Y1 \
	VPSLLD       $23, Y1, Y1 \
	VMULPS       Y1, Y4, Y0

// func sigmoidAVX(x *float32, n int)
//
// x[i] = 1 / (1 + exp(−x[i])) in place for i < n, n a multiple of 8.
TEXT ·sigmoidAVX(SB), NOSPLIT, $0-16
	MOVQ         x+0(FP), DI
	MOVQ         n+8(FP), CX
	SHRQ         $3, CX
	JEQ          sdone
	VBROADCASTSS actConst<>+56(SB), Y6
	VBROADCASTSS actConst<>+0(SB), Y7

sloop:
	VMOVUPS (DI), Y0
	VXORPS  Y6, Y0, Y0
	EXP8
	VADDPS  Y7, Y0, Y0
	VDIVPS  Y0, Y7, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	DECQ    CX
	JNZ     sloop

sdone:
	VZEROUPPER
	RET

// func tanhAVX(x *float32, n int)
//
// x[i] = tanh(x[i]) in place for i < n, n a multiple of 8: for |x| < 0.625
// the odd polynomial x + x³·P(x²) (Cephes tanhf), else
// sign(x)·(1 − 2/(exp(2|x|) + 1)).
TEXT ·tanhAVX(SB), NOSPLIT, $0-16
	MOVQ         x+0(FP), DI
	MOVQ         n+8(FP), CX
	SHRQ         $3, CX
	JEQ          tdone
	VBROADCASTSS actConst<>+56(SB), Y6
	VBROADCASTSS actConst<>+0(SB), Y7
	VBROADCASTSS actConst<>+88(SB), Y13
	VBROADCASTSS actConst<>+64(SB), Y14
	VBROADCASTSS actConst<>+60(SB), Y15

tloop:
	VMOVUPS      (DI), Y10
	VANDPS       Y15, Y10, Y8
	VANDPS       Y6, Y10, Y9
	VADDPS       Y8, Y8, Y0
	EXP8
	VADDPS       Y7, Y0, Y0
	VDIVPS       Y0, Y13, Y0
	VSUBPS       Y0, Y7, Y0
	VORPS        Y9, Y0, Y0
	VMULPS       Y10, Y10, Y3
	VBROADCASTSS actConst<>+68(SB), Y11
	VBROADCASTSS actConst<>+72(SB), Y5
	VFMADD213PS  Y5, Y3, Y11
	VBROADCASTSS actConst<>+76(SB), Y5
	VFMADD213PS  Y5, Y3, Y11
	VBROADCASTSS actConst<>+80(SB), Y5
	VFMADD213PS  Y5, Y3, Y11
	VBROADCASTSS actConst<>+84(SB), Y5
	VFMADD213PS  Y5, Y3, Y11
	VMULPS       Y3, Y11, Y11
	VFMADD213PS  Y10, Y10, Y11
	VCMPPS       $1, Y14, Y8, Y12
	VBLENDVPS    Y12, Y11, Y0, Y0
	VMOVUPS      Y0, (DI)
	ADDQ         $32, DI
	DECQ         CX
	JNZ          tloop

tdone:
	VZEROUPPER
	RET
