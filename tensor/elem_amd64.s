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
