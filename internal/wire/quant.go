package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// Lossy encodings that keep far fewer bytes than 16 bits a value; each is
// meant to be used with error feedback (what a message leaves out is kept
// by its sender and added to what it sends next; see Feedback).
const (
	// EncInt8: a float32 scale, then one signed byte a value: v ≈ q·scale,
	// scale = max|v|/127, q rounded to nearest (ties to even). A chunk
	// holding a non-finite value decodes as all NaN.
	EncInt8 Encoding = "int8"
	// EncTopK: the k values of largest magnitude and where they are: a
	// uint32 count k, k ascending uint32 indices, k float32 values; the
	// rest decode as 0.
	EncTopK Encoding = "topk"
	// EncSign: a float32 scale, the mean magnitude of the values, then a
	// bit a value (value i in byte i/8, bit i%8): set decodes as +scale,
	// clear as −scale. A chunk holding a non-finite value decodes as all
	// NaN. With error feedback each value then moves towards its target
	// by the chunk's mean step every message: a topk job's parameter
	// servers send θ's change so.
	EncSign Encoding = "sign"
)

// Lossy reports whether e needs error feedback to train as float32 does.
func (e Encoding) Lossy() bool { return e == EncInt8 || e == EncTopK || e == EncSign }

// AppendCompressed appends src to dst in encoding e; ratio is the share
// of values EncTopK keeps (at least one), unused by the others.
func AppendCompressed(dst []byte, src []float32, e Encoding, ratio float64) []byte {
	switch e {
	case EncInt8:
		return appendInt8(dst, src)
	case EncTopK:
		return appendTopK(dst, src, ratio)
	case EncSign:
		return appendSign(dst, src)
	}
	return AppendEncoded(dst, src, e)
}

func appendSign(dst []byte, src []float32) []byte {
	var sum float64
	for _, v := range src {
		sum += math.Abs(float64(v))
	}
	var scale float32
	if len(src) > 0 {
		scale = float32(sum / float64(len(src))) // NaN or Inf for a non-finite value
	}
	if math.IsInf(float64(scale), 0) {
		scale = float32(math.NaN())
	}
	dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(scale))
	start := len(dst)
	dst = append(dst, make([]byte, (len(src)+7)/8)...)
	bits := dst[start:]
	for i, v := range src {
		if v >= 0 {
			bits[i/8] |= 1 << (i % 8)
		}
	}
	return dst
}

func appendInt8(dst []byte, src []float32) []byte {
	var peak float32
	finite := true
	for _, v := range src {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			finite = false
			break
		}
		peak = max(peak, float32(math.Abs(float64(v))))
	}
	scale := peak / 127
	if !finite {
		scale = float32(math.NaN())
	}
	dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(scale))
	for _, v := range src {
		var q int8
		if scale > 0 {
			q = int8(max(-127, min(127, math.RoundToEven(float64(v/scale)))))
		}
		dst = append(dst, byte(q))
	}
	return dst
}

// TopKCount is how many of n values EncTopK keeps at ratio.
func TopKCount(n int, ratio float64) int {
	if n == 0 {
		return 0
	}
	return max(1, min(n, int(math.Ceil(ratio*float64(n)))))
}

func appendTopK(dst []byte, src []float32, ratio float64) []byte {
	k := TopKCount(len(src), ratio)
	idx := topK(src, k)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(idx)))
	for _, i := range idx {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(i))
	}
	for _, i := range idx {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(src[i]))
	}
	return dst
}

// topK returns the ascending indices of the k values of src of largest
// magnitude (NaN counting as the largest; among equal magnitudes the
// first ones).
func topK(src []float32, k int) []int {
	if k >= len(src) {
		idx := make([]int, len(src))
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	mag := func(v float32) float32 {
		if v != v {
			return float32(math.Inf(1))
		}
		return float32(math.Abs(float64(v)))
	}
	// The k-th largest magnitude, by selection on a copy.
	m := make([]float32, len(src))
	for i, v := range src {
		m[i] = mag(v)
	}
	t := selectKth(m, len(m)-k)
	idx := make([]int, 0, k)
	for i, v := range src { // those above the threshold, then ties in order
		if mag(v) > t {
			idx = append(idx, i)
		}
	}
	for i, v := range src {
		if len(idx) == k {
			break
		}
		if mag(v) == t {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	return idx
}

// selectKth returns the value that would be at index k of a sorted; a is
// reordered.
func selectKth(a []float32, k int) float32 {
	lo, hi := 0, len(a)-1
	for lo < hi {
		p := a[lo+(hi-lo)/2]
		i, j := lo, hi
		for i <= j {
			for a[i] < p {
				i++
			}
			for a[j] > p {
				j--
			}
			if i <= j {
				a[i], a[j] = a[j], a[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return a[k]
		}
	}
	return a[k]
}

// decodeLossy decodes an EncInt8, EncTopK or EncSign src into dst.
func decodeLossy(dst []float32, src []byte, e Encoding) error {
	switch e {
	case EncInt8:
		if len(src) != 4+len(dst) {
			return fmt.Errorf("%w: %d bytes of int8, want %d values and a scale", ErrFloats, len(src), len(dst))
		}
		scale := math.Float32frombits(binary.LittleEndian.Uint32(src))
		for i := range dst {
			dst[i] = float32(int8(src[4+i])) * scale
		}
		return nil
	case EncTopK:
		if len(src) < 4 {
			return fmt.Errorf("%w: %d bytes of topk", ErrFloats, len(src))
		}
		k := int(binary.LittleEndian.Uint32(src))
		if k > len(dst) || len(src) != 4+8*k {
			return fmt.Errorf("%w: topk of %d values in %d bytes for %d floats", ErrFloats, k, len(src), len(dst))
		}
		clear(dst)
		last := -1
		for j := range k {
			i := int(binary.LittleEndian.Uint32(src[4+4*j:]))
			if i <= last || i >= len(dst) {
				return fmt.Errorf("%w: topk index %d after %d, of %d", ErrFloats, i, last, len(dst))
			}
			last = i
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4+4*k+4*j:]))
		}
		return nil
	case EncSign:
		if len(src) != 4+(len(dst)+7)/8 {
			return fmt.Errorf("%w: %d bytes of sign, want a scale and %d bits", ErrFloats, len(src), len(dst))
		}
		scale := math.Float32frombits(binary.LittleEndian.Uint32(src))
		bits := src[4:]
		for i := range dst {
			if bits[i/8]&(1<<(i%8)) != 0 {
				dst[i] = scale
			} else {
				dst[i] = -scale
			}
		}
		return nil
	}
	return fmt.Errorf("%w: unknown encoding %q", ErrFloats, string(e))
}

// Feedback is a sender's error feedback for a lossy encoding: the part of
// each value its messages have left out so far, added to the next.
type Feedback struct {
	Enc   Encoding
	Ratio float64 // EncTopK's share kept
	resid []float32
	u     []float32 // scratch: a message's values before encoding
}

// NewFeedback returns the feedback of a flat vector of n values.
func NewFeedback(enc Encoding, ratio float64, n int) *Feedback {
	return &Feedback{Enc: enc, Ratio: ratio, resid: make([]float32, n), u: make([]float32, n)}
}

// Append encodes src, the values at [lo, lo+len(src)) of the flat vector,
// plus what earlier messages left out there, and keeps what this one
// leaves out. Concurrent calls must cover disjoint ranges.
func (f *Feedback) Append(dst []byte, src []float32, lo int) []byte {
	r, u := f.resid[lo:lo+len(src)], f.u[lo:lo+len(src)]
	for i, v := range src {
		u[i] = v + r[i]
	}
	start := len(dst)
	dst = AppendCompressed(dst, u, f.Enc, f.Ratio)
	// Decoding what was just encoded cannot fail; were it to, the whole
	// of u would stay behind.
	if DecodeFloats(r, dst[start:], f.Enc) != nil {
		clear(r)
	}
	for i := range r {
		r[i] = u[i] - r[i]
	}
	return dst
}

// Residual is what the messages have left out so far (for tests).
func (f *Feedback) Residual() []float32 { return f.resid }
