package wire

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Encoding is how a gradient chunk's floats travel: as float32 (the
// default), or rounded to 16 bits, halving the bytes.
type Encoding string

// Encodings.
const (
	EncFloat32  Encoding = ""     // little-endian IEEE 754 binary32
	EncFloat16  Encoding = "fp16" // IEEE 754 binary16, rounded to nearest even; beyond ±65504 infinite
	EncBFloat16 Encoding = "bf16" // bfloat16 (binary32's top 16 bits), rounded to nearest even
)

// Size is the bytes of one float in e, or 0 for an unknown encoding.
func (e Encoding) Size() int {
	switch e {
	case EncFloat32:
		return 4
	case EncFloat16, EncBFloat16:
		return 2
	}
	return 0
}

// AppendEncoded appends src to dst in encoding e (EncFloat32 for an
// unknown one).
func AppendEncoded(dst []byte, src []float32, e Encoding) []byte {
	switch e {
	case EncFloat16:
		for _, v := range src {
			dst = binary.LittleEndian.AppendUint16(dst, Float16(v))
		}
		return dst
	case EncBFloat16:
		for _, v := range src {
			dst = binary.LittleEndian.AppendUint16(dst, BFloat16(v))
		}
		return dst
	}
	return AppendFloats(dst, src)
}

// DecodeFloats decodes src, in encoding e, into dst; src must hold
// exactly len(dst) floats.
func DecodeFloats(dst []float32, src []byte, e Encoding) error {
	if e.Lossy() {
		return decodeLossy(dst, src, e)
	}
	size := e.Size()
	switch {
	case size == 0:
		return fmt.Errorf("%w: unknown encoding %q", ErrFloats, string(e))
	case size == 4:
		return Floats(dst, src)
	case len(src) != 2*len(dst):
		return fmt.Errorf("%w: %d bytes of %s, want %d floats", ErrFloats, len(src), string(e), len(dst))
	}
	for i := range dst {
		h := binary.LittleEndian.Uint16(src[2*i:])
		if e == EncFloat16 {
			dst[i] = FromFloat16(h)
		} else {
			dst[i] = math.Float32frombits(uint32(h) << 16)
		}
	}
	return nil
}

// BFloat16 rounds v to bfloat16 (nearest, ties to even); NaN stays NaN.
func BFloat16(v float32) uint16 {
	b := math.Float32bits(v)
	if b&0x7fffffff > 0x7f800000 { // NaN: keep it one (quiet)
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// Float16 rounds v to IEEE 754 binary16 (nearest, ties to even): beyond
// the largest finite half (65504) it is infinite, below the smallest
// subnormal (2^-24) it rounds to zero; NaN stays NaN.
func Float16(v float32) uint16 {
	b := math.Float32bits(v)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	man := b & 0x7fffff
	switch {
	case exp == 0xff: // Inf or NaN
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp == 0: // float32 zero or subnormal: far below half's range
		return sign
	}
	e := exp - 127 + 15 // the half exponent
	switch {
	case e >= 0x1f:
		return sign | 0x7c00
	case e <= 0: // a half subnormal (or zero): shift the implicit bit in
		if e < -10 {
			return sign
		}
		m := man | 0x800000
		shift := uint(14 - e) // 13 + (1 − e)
		return sign | uint16(roundShift(m, shift))
	}
	// Normal: 10 of the 23 mantissa bits, rounded; a carry moves into
	// the exponent, and from the largest exponent into infinity.
	h := uint32(e)<<10 | man>>13
	rest := man & 0x1fff
	if rest > 0x1000 || rest == 0x1000 && h&1 == 1 {
		h++
	}
	if h >= 0x7c00 {
		return sign | 0x7c00
	}
	return sign | uint16(h)
}

// roundShift is m >> shift rounded to nearest, ties to even.
func roundShift(m uint32, shift uint) uint32 {
	q := m >> shift
	rest := m & (1<<shift - 1)
	half := uint32(1) << (shift - 1)
	if rest > half || rest == half && q&1 == 1 {
		q++
	}
	return q
}

// FromFloat16 widens a binary16 to float32 (exactly).
func FromFloat16(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := int(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0:
		if man == 0 {
			return math.Float32frombits(sign)
		}
		v := float32(man) / (1 << 24) // subnormal: man × 2^-24, exact in float32
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | uint32(exp-15+127)<<23 | man<<13)
}
