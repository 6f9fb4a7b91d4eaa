//go:build !noasm

#include "textflag.h"

// func gather16(dst, src *float32, rowOff *int32, kb int, colOff *int32)
//
// dst[p·16 + j] = src[rowOff[p] + colOff[j]] for p < kb, j < 16: one panel
// of an implicit im2col matrix, two 8-lane gathers per row.
TEXT ·gather16(SB), NOSPLIT, $0-40
	MOVQ    dst+0(FP), DI
	MOVQ    src+8(FP), SI
	MOVQ    rowOff+16(FP), R8
	MOVQ    kb+24(FP), CX
	MOVQ    colOff+32(FP), R9
	VMOVDQU (R9), Y8
	VMOVDQU 32(R9), Y9
	TESTQ   CX, CX
	JEQ     done

loop:
	MOVLQSX    (R8), AX
	LEAQ       (SI)(AX*4), BX
	VPCMPEQD   Y10, Y10, Y10
	VPCMPEQD   Y11, Y11, Y11
	VGATHERDPS Y10, (BX)(Y8*4), Y0
	VGATHERDPS Y11, (BX)(Y9*4), Y1
	VMOVUPS    Y0, (DI)
	VMOVUPS    Y1, 32(DI)
	ADDQ       $4, R8
	ADDQ       $64, DI
	DECQ       CX
	JNZ        loop

done:
	VZEROUPPER
	RET
