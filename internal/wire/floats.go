package wire

import (
	"encoding/binary"
	"fmt"
	"math"
)

// PutFloats writes src into dst as little-endian float32s; dst must hold
// 4·len(src) bytes.
func PutFloats(dst []byte, src []float32) {
	dst = dst[:4*len(src)]
	for i, v := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
	}
}

// AppendFloats appends src to dst as little-endian float32s.
func AppendFloats(dst []byte, src []float32) []byte {
	n := len(dst)
	if cap(dst)-n < 4*len(src) {
		dst = append(make([]byte, 0, n+4*len(src)), dst...)
	}
	dst = dst[:n+4*len(src)]
	PutFloats(dst[n:], src)
	return dst
}

// Floats decodes src into dst; src must hold exactly 4·len(dst) bytes.
func Floats(dst []float32, src []byte) error {
	if len(src)%4 != 0 {
		return fmt.Errorf("%w: %d bytes", ErrFloats, len(src))
	}
	if len(src) != 4*len(dst) {
		return fmt.Errorf("%w: %d floats, want %d", ErrFloats, len(src)/4, len(dst))
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
	return nil
}

// Range is the half-open key range [Lo, Hi) of the flat parameter vector.
type Range struct {
	Lo int `msgpack:"lo" json:"lo"`
	Hi int `msgpack:"hi" json:"hi"`
}

// Len is Hi − Lo.
func (r Range) Len() int { return r.Hi - r.Lo }

// Split cuts [0, n) into parts contiguous ranges whose lengths differ by at
// most one.
func Split(n, parts int) []Range {
	rs := make([]Range, parts)
	for i := range rs {
		rs[i] = Range{Lo: n * i / parts, Hi: n * (i + 1) / parts}
	}
	return rs
}

// DefaultChunkFloats is the default chunk size: 512 KiB of float32s, well
// under NATS's default 1 MiB max_payload with the message header.
const DefaultChunkFloats = 128 * 1024

// Chunks cuts r into consecutive pieces of at most max floats.
func Chunks(r Range, max int) []Range {
	var cs []Range
	for lo := r.Lo; lo < r.Hi; lo += max {
		cs = append(cs, Range{Lo: lo, Hi: min(lo+max, r.Hi)})
	}
	return cs
}
