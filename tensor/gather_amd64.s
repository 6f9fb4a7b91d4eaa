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

// func packShift16(dst, src *float32, rowOff, rowMask *int32, masks *int32, kb, col int)
//
// For p < kb, j < 16, with m = masks[rowMask[p] + j]:
// dst[p·16 + j] = m ? src[rowOff[p] + col + j] : 0. One panel of the im2col
// matrix of a shifted-plane convolution (see shiftPanels): two masked
// 8-lane loads per row, which read nothing, and so cannot fault, where the
// mask is off (the padding, which may lie outside the image).
TEXT ·packShift16(SB), NOSPLIT, $0-56
	MOVQ  dst+0(FP), DI
	MOVQ  src+8(FP), SI
	MOVQ  rowOff+16(FP), R8
	MOVQ  rowMask+24(FP), R9
	MOVQ  masks+32(FP), R11
	MOVQ  kb+40(FP), CX
	MOVQ  col+48(FP), DX
	TESTQ CX, CX
	JEQ   psdone

psloop:
	MOVLQSX    (R8), AX
	ADDQ       DX, AX
	MOVLQSX    (R9), BX
	LEAQ       (SI)(AX*4), R10
	LEAQ       (R11)(BX*4), R12
	VMOVDQU    (R12), Y0
	VMOVDQU    32(R12), Y1
	VMASKMOVPS (R10), Y0, Y2
	VMASKMOVPS 32(R10), Y1, Y3
	VMOVUPS    Y2, (DI)
	VMOVUPS    Y3, 32(DI)
	ADDQ       $4, R8
	ADDQ       $4, R9
	ADDQ       $64, DI
	DECQ       CX
	JNZ        psloop

psdone:
	VZEROUPPER
	RET

// func pack16(dst, src *float32, ld, kb int)
//
// dst[p·16 + j] = src[p·ld + j] for p < kb, j < 16: one 16-column panel of
// a row-major B, two 8-lane loads and stores per row.
TEXT ·pack16(SB), NOSPLIT, $0-32
	MOVQ  dst+0(FP), DI
	MOVQ  src+8(FP), SI
	MOVQ  ld+16(FP), R8
	SHLQ  $2, R8
	MOVQ  kb+24(FP), CX
	TESTQ CX, CX
	JEQ   pkdone

pkloop:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ    R8, SI
	ADDQ    $64, DI
	DECQ    CX
	JNZ     pkloop

pkdone:
	VZEROUPPER
	RET

// func packT16(dst, src *float32, ld, blocks int)
//
// dst[p·16 + j] = src[j·ld + p] for p < 8·blocks, j < 16: one 16-column
// panel of a B stored transposed, as 8x8 transposes in registers (unpack,
// shuffle, then swap 128-bit lanes).
TEXT ·packT16(SB), NOSPLIT, $0-32
	MOVQ  dst+0(FP), DI
	MOVQ  src+8(FP), SI
	MOVQ  ld+16(FP), R9
	SHLQ  $2, R9
	MOVQ  blocks+24(FP), CX
	TESTQ CX, CX
	JEQ   ptdone
	LEAQ  (R9)(R9*2), R10
	MOVQ  R9, R11
	SHLQ  $3, R11

ptblock:
	MOVQ SI, AX
	MOVQ DI, BX
	MOVQ $2, DX

pthalf:
	VMOVUPS    (AX), Y0
	VMOVUPS    (AX)(R9*1), Y1
	VMOVUPS    (AX)(R9*2), Y2
	VMOVUPS    (AX)(R10*1), Y3
	LEAQ       (AX)(R9*4), R12
	VMOVUPS    (R12), Y4
	VMOVUPS    (R12)(R9*1), Y5
	VMOVUPS    (R12)(R9*2), Y6
	VMOVUPS    (R12)(R10*1), Y7
	VUNPCKLPS  Y1, Y0, Y8
	VUNPCKHPS  Y1, Y0, Y9
	VUNPCKLPS  Y3, Y2, Y10
	VUNPCKHPS  Y3, Y2, Y11
	VUNPCKLPS  Y5, Y4, Y12
	VUNPCKHPS  Y5, Y4, Y13
	VUNPCKLPS  Y7, Y6, Y14
	VUNPCKHPS  Y7, Y6, Y15
	VSHUFPS    $0x44, Y10, Y8, Y0
	VSHUFPS    $0xEE, Y10, Y8, Y1
	VSHUFPS    $0x44, Y11, Y9, Y2
	VSHUFPS    $0xEE, Y11, Y9, Y3
	VSHUFPS    $0x44, Y14, Y12, Y4
	VSHUFPS    $0xEE, Y14, Y12, Y5
	VSHUFPS    $0x44, Y15, Y13, Y6
	VSHUFPS    $0xEE, Y15, Y13, Y7
	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15
	VMOVUPS    Y8, (BX)
	VMOVUPS    Y9, 64(BX)
	VMOVUPS    Y10, 128(BX)
	VMOVUPS    Y11, 192(BX)
	VMOVUPS    Y12, 256(BX)
	VMOVUPS    Y13, 320(BX)
	VMOVUPS    Y14, 384(BX)
	VMOVUPS    Y15, 448(BX)
	ADDQ       R11, AX
	ADDQ       $32, BX
	DECQ       DX
	JNZ        pthalf
	ADDQ       $32, SI
	ADDQ       $512, DI
	DECQ       CX
	JNZ        ptblock

ptdone:
	VZEROUPPER
	RET

// func packA6(dst, src *float32, ld, blocks int)
//
// dst[p·6 + i] = src[i·ld + p] for i < 6, p < 8·blocks: a six-row panel
// of A for the 6x16 kernel, eight columns at a time as an 8x8 transpose
// in registers with two zero rows. Each column's six values are stored
// with one 32-byte store, in order, so each store's two extra floats are
// overwritten by the next; the last block's spill two floats past
// dst[48·blocks], which the caller must own (the next column's slot).
TEXT ·packA6(SB), NOSPLIT, $0-32
	MOVQ   dst+0(FP), DI
	MOVQ   src+8(FP), SI
	MOVQ   ld+16(FP), R9
	SHLQ   $2, R9
	MOVQ   blocks+24(FP), CX
	TESTQ  CX, CX
	JEQ    padone
	LEAQ   (R9)(R9*2), R10
	VXORPS Y15, Y15, Y15

pablock:
	LEAQ       (SI)(R9*4), R12
	VMOVUPS    (SI), Y0
	VMOVUPS    (SI)(R9*1), Y1
	VMOVUPS    (SI)(R9*2), Y2
	VMOVUPS    (SI)(R10*1), Y3
	VMOVUPS    (R12), Y4
	VMOVUPS    (R12)(R9*1), Y5
	VUNPCKLPS  Y1, Y0, Y6
	VUNPCKHPS  Y1, Y0, Y7
	VUNPCKLPS  Y3, Y2, Y8
	VUNPCKHPS  Y3, Y2, Y9
	VUNPCKLPS  Y5, Y4, Y10
	VUNPCKHPS  Y5, Y4, Y11
	VSHUFPS    $0x44, Y8, Y6, Y0
	VSHUFPS    $0xEE, Y8, Y6, Y1
	VSHUFPS    $0x44, Y9, Y7, Y2
	VSHUFPS    $0xEE, Y9, Y7, Y3
	VSHUFPS    $0x44, Y15, Y10, Y4
	VSHUFPS    $0xEE, Y15, Y10, Y5
	VSHUFPS    $0x44, Y15, Y11, Y6
	VSHUFPS    $0xEE, Y15, Y11, Y7
	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y0
	VMOVUPS    Y8, (DI)
	VMOVUPS    Y9, 24(DI)
	VMOVUPS    Y10, 48(DI)
	VMOVUPS    Y11, 72(DI)
	VMOVUPS    Y12, 96(DI)
	VMOVUPS    Y13, 120(DI)
	VMOVUPS    Y14, 144(DI)
	VMOVUPS    Y0, 168(DI)
	ADDQ       $32, SI
	ADDQ       $192, DI
	DECQ       CX
	JNZ        pablock

padone:
	VZEROUPPER
	RET
