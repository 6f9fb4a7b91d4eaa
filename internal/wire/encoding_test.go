package wire

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// halfValue is binary16 h's value by the standard's formula, in float64.
func halfValue(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e, m := int(h>>10)&0x1f, float64(h&0x3ff)
	switch e {
	case 0x1f:
		if m != 0 {
			return math.NaN()
		}
		return math.Inf(int(sign))
	case 0:
		return sign * math.Ldexp(m, -24)
	}
	return sign * math.Ldexp(1+m/1024, e-15)
}

// nearest16 rounds v to the nearest of the 16-bit patterns whose values
// (non-negative, ascending, one past the largest finite standing for
// infinity) are vals, ties to the even pattern: the naive definition.
func nearest16(v float64, vals []float64, pats []uint16) uint16 {
	a := math.Abs(v)
	i := sort.SearchFloat64s(vals, a)
	var best uint16
	switch {
	case i == 0:
		best = pats[0]
	case i == len(vals):
		best = pats[len(pats)-1]
	default:
		lo, hi := a-vals[i-1], vals[i]-a
		switch {
		case lo < hi:
			best = pats[i-1]
		case hi < lo:
			best = pats[i]
		case pats[i-1]&1 == 0:
			best = pats[i-1]
		default:
			best = pats[i]
		}
	}
	if math.Signbit(v) {
		best |= 0x8000
	}
	return best
}

// table lists the non-negative finite patterns of a 16-bit format whose
// value is given by value, then infinity at maxFinite's next binade step.
func table(value func(uint16) float64, inf uint16, infAt float64) ([]float64, []uint16) {
	var vals []float64
	var pats []uint16
	for p := uint16(0); p < inf; p++ {
		vals, pats = append(vals, value(p)), append(pats, p)
	}
	return append(vals, infAt), append(pats, inf)
}

func testValues(r *rand.Rand) []float32 {
	vs := []float32{0, 1, -1, 0.1, 1.0 / 3, 65504, 65519.99, 65520, 65536, 1e6, -1e6, 6.1e-5, 5.96e-8, 2.98e-8, 2.99e-8, 1e-9,
		float32(math.Ldexp(1, -25)), float32(math.Ldexp(1, -24)), float32(math.Ldexp(3, -26)), math.MaxFloat32, math.SmallestNonzeroFloat32,
		float32(math.Inf(1)), float32(math.Inf(-1))}
	for range 20000 {
		vs = append(vs, float32(math.Ldexp(r.Float64()*2-1, r.IntN(60)-40)))
		vs = append(vs, math.Float32frombits(r.Uint32()&^0x7f800000|uint32(r.IntN(255))<<23))
	}
	return vs
}

// TestFloat16AgainstNaive: every float rounds to the binary16 nearest to it
// (ties to even, past 65520 infinite), found by searching all 65,536
// patterns valued by the standard's formula; decoding gives that value.
func TestFloat16AgainstNaive(t *testing.T) {
	vals, pats := table(halfValue, 0x7c00, 65536)
	r := rand.New(rand.NewPCG(1, 2))
	for _, v := range testValues(r) {
		got, want := Float16(v), nearest16(float64(v), vals, pats)
		if got != want {
			t.Fatalf("Float16(%g) = %#04x (%g), want %#04x (%g)", v, got, halfValue(got), want, halfValue(want))
		}
		if d := FromFloat16(got); float64(d) != halfValue(got) && !math.IsNaN(float64(d)) {
			t.Fatalf("FromFloat16(%#04x) = %g, want %g", got, d, halfValue(got))
		}
	}
	if h := Float16(float32(math.NaN())); !math.IsNaN(float64(FromFloat16(h))) {
		t.Errorf("NaN encodes as %#04x", h)
	}
}

// TestBFloat16AgainstNaive: as for binary16, with bfloat16's values (the
// top half of a binary32) and its infinity past the largest finite.
func TestBFloat16AgainstNaive(t *testing.T) {
	value := func(p uint16) float64 { return float64(math.Float32frombits(uint32(p) << 16)) }
	vals, pats := table(value, 0x7f80, math.Ldexp(1, 128))
	r := rand.New(rand.NewPCG(3, 4))
	for _, v := range testValues(r) {
		got, want := BFloat16(v), nearest16(float64(v), vals, pats)
		if got != want {
			t.Fatalf("BFloat16(%g) = %#04x, want %#04x", v, got, want)
		}
	}
	if h := BFloat16(float32(math.NaN())); !math.IsNaN(value(h)) {
		t.Errorf("NaN encodes as %#04x", h)
	}
}

// TestEncodedRoundTrip: a chunk encoded in each encoding decodes to the
// rounded values in half (or all) the bytes; wrong lengths and unknown
// encodings are errors.
func TestEncodedRoundTrip(t *testing.T) {
	src := []float32{1, -2.5, 3.14159, 1e-3, 7e4}
	for _, e := range []Encoding{EncFloat32, EncFloat16, EncBFloat16} {
		b := AppendEncoded(nil, src, e)
		if len(b) != e.Size()*len(src) {
			t.Fatalf("%q: %d bytes for %d floats", e, len(b), len(src))
		}
		got := make([]float32, len(src))
		if err := DecodeFloats(got, b, e); err != nil {
			t.Fatal(err)
		}
		for i, v := range src {
			want := v
			switch e {
			case EncFloat16:
				want = FromFloat16(Float16(v))
			case EncBFloat16:
				want = math.Float32frombits(uint32(BFloat16(v)) << 16)
			}
			if got[i] != want {
				t.Errorf("%q: %g decoded as %g, want %g", e, v, got[i], want)
			}
		}
		if err := DecodeFloats(got[:4], b, e); err == nil {
			t.Errorf("%q: decoded %d bytes into 4 floats", e, len(b))
		}
	}
	if err := DecodeFloats(make([]float32, 2), make([]byte, 4), Encoding("int3")); err == nil {
		t.Error("an unknown encoding decoded")
	}
}
