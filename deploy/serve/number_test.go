package serve

import (
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// checkNumber compares parseFloat32 with strconv.ParseFloat(s, 32).
func checkNumber(t *testing.T, s string) {
	t.Helper()
	got, err := parseFloat32([]byte(s))
	want, werr := strconv.ParseFloat(s, 32)
	if err != nil {
		if errors.Is(err, errNumber) {
			return // not JSON; strconv is laxer (+1, .5, 01, Inf)
		}
		if werr == nil {
			t.Fatalf("%q: error %v, strconv gives %v", s, err, want)
		}
		return
	}
	if werr != nil {
		t.Fatalf("%q = %v, strconv fails: %v", s, got, werr)
	}
	if math.Float32bits(got) != math.Float32bits(float32(want)) {
		t.Fatalf("%q = %v (%#x), strconv %v (%#x)", s, got, math.Float32bits(got), float32(want), math.Float32bits(float32(want)))
	}
}

func TestParseFloat32(t *testing.T) {
	for _, s := range []string{"0", "-0", "1", "-1", "0.5", "255", "0.1307", "-0.42313725", "3.4028235e38", "3.5e38",
		"1e-45", "1.4e-45", "1e-46", "1.17549435e-38", "16777217", "16777219", "0.000000059604645",
		"123456789012345678901234567890", "1e22", "1e23", "9007199254740993", "2.00000011920928955078125",
		"2.000000119209289550781250001", "1E5", "1e+5", "-2.5e-3"} {
		checkNumber(t, s)
	}
	for _, s := range []string{"", "-", "01", "+1", ".5", "1.", "1e", "1e+", "Inf", "NaN", "0x10", "1-2", "--1"} {
		if _, err := parseFloat32([]byte(s)); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	// Every float32 printed shortest, and float64s printed at full length,
	// near 1 and spread over the range.
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		f := math.Float32frombits(r.Uint32())
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			continue
		}
		checkNumber(t, strconv.FormatFloat(float64(f), 'g', -1, 32))
		checkNumber(t, strconv.FormatFloat(r.Float64()*2-1, 'g', -1, 64))
		checkNumber(t, strconv.FormatFloat(r.NormFloat64(), 'f', r.IntN(12), 64))
	}
}

func FuzzParseFloat32(f *testing.F) {
	for _, s := range []string{"0.5", "-1e-40", "16777217", "2.00000011920928955078125"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkNumber(t, s) })
}

func BenchmarkParseFloat32(b *testing.B) {
	toks := [][]byte{[]byte("-0.123"), []byte("0.42313725"), []byte("255"), []byte("-0.0045")}
	for b.Loop() {
		for _, t := range toks {
			parseFloat32(t)
		}
	}
}
