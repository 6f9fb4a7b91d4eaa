//go:build !amd64 || noasm

package tensor

const hasAVX2FMA = false

var simdKernel *microKernel

const hasGather16 = false

func gather16(dst, src *float32, rowOff *int32, kb int, colOff *int32) { panic("unreachable") }

func reluAVX(x *float32, n int) { panic("unreachable") }

func maxPool2x2AVX(y, r0, r1 *float32, n int) { panic("unreachable") }

func reluBackwardAVX(dy, y, dx *float32, n int) { panic("unreachable") }

var poolTailMasks [8][24]int32

func maxPoolBackward2x2AVX(dx0, dx1 *float32, dy *float32, idx *int32, n int, base, w int32, masks *int32) {
	panic("unreachable")
}

func maxPool2x2IdxAVX(y *float32, idx *int32, r0, r1 *float32, n int, base, w int32, masks *int32) {
	panic("unreachable")
}

func maxPool2x2GatherAVX(y *float32, idx *int32, x *float32, off *int32, n int, base, w int32) {
	panic("unreachable")
}

func packShift16(dst, src *float32, rowOff, rowMask *int32, masks *int32, kb, col int) {
	panic("unreachable")
}

func fillAVX(x *float32, n int, v float32) { panic("unreachable") }

func adamAVX(p, grad, m, v *float32, n int, c *float32) { panic("unreachable") }

func pack16(dst, src *float32, ld, kb int) { panic("unreachable") }

func packT16(dst, src *float32, ld, blocks int) { panic("unreachable") }

func packA6(dst, src *float32, ld, blocks int) { panic("unreachable") }

func addAVX(dst, src *float32, n int, mask *int32) { panic("unreachable") }

var tailMask [16]int32

func sigmoidAVX(x *float32, n int) { panic("unreachable") }
func tanhAVX(x *float32, n int)    { panic("unreachable") }
