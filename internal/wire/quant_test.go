package wire

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

func randomValues(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * math.Exp(rng.NormFloat64()))
	}
	return v
}

// TestInt8: every value within half a step of the scale, the largest
// exact, a chunk with a non-finite value all NaN.
func TestInt8(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 7, 1000} {
		v := randomValues(rng, n)
		b := AppendCompressed(nil, v, EncInt8, 0)
		if len(b) != 4+n {
			t.Fatalf("%d values in %d bytes", n, len(b))
		}
		got := make([]float32, n)
		if err := DecodeFloats(got, b, EncInt8); err != nil {
			t.Fatal(err)
		}
		var peak float64
		for _, x := range v {
			peak = max(peak, math.Abs(float64(x)))
		}
		scale := peak / 127
		for i := range v {
			if d := math.Abs(float64(got[i] - v[i])); d > scale/2*(1+1e-6) {
				t.Fatalf("n=%d: value %d: %g decoded as %g (scale %g)", n, i, v[i], got[i], scale)
			}
			if math.Abs(float64(v[i])) == peak && math.Abs(float64(got[i]-v[i])) > 1e-6*peak {
				t.Errorf("n=%d: the largest value %g decoded as %g", n, v[i], got[i])
			}
		}
	}
	zeros := make([]float32, 5)
	got := []float32{1, 1, 1, 1, 1}
	if err := DecodeFloats(got, AppendCompressed(nil, zeros, EncInt8, 0), EncInt8); err != nil || !slices.Equal(got, zeros) {
		t.Errorf("zeros decode as %v (%v)", got, err)
	}
	bad := []float32{1, float32(math.Inf(1)), 2}
	if err := DecodeFloats(got[:3], AppendCompressed(nil, bad, EncInt8, 0), EncInt8); err != nil || !math.IsNaN(float64(got[0])) {
		t.Errorf("a chunk with an infinity decodes as %v (%v), want NaN", got[:3], err)
	}
}

// TestTopK: the values kept are those of largest magnitude (ties: the
// first), by a sort; the others decode as 0.
func TestTopK(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct {
		n     int
		ratio float64
	}{{1, 0.01}, {10, 0.3}, {1000, 0.01}, {4097, 0.1}, {50, 1}} {
		v := randomValues(rng, c.n)
		if c.n == 50 {
			for i := range v {
				v[i] = float32(i % 3) // ties
			}
		}
		k := TopKCount(c.n, c.ratio)
		order := make([]int, c.n)
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool { return math.Abs(float64(v[order[a]])) > math.Abs(float64(v[order[b]])) })
		want := make([]float32, c.n)
		for _, i := range order[:k] {
			want[i] = v[i]
		}
		b := AppendCompressed(nil, v, EncTopK, c.ratio)
		if len(b) != 4+8*k {
			t.Errorf("n=%d: %d bytes for %d kept", c.n, len(b), k)
		}
		got := make([]float32, c.n)
		if err := DecodeFloats(got, b, EncTopK); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("n=%d ratio %g: kept values differ from the %d largest", c.n, c.ratio, k)
		}
	}
}

// TestSign: a scale that is the values' mean magnitude and a bit a value,
// +scale for the non-negative and −scale for the negative ones; a chunk
// with a non-finite value decodes as all NaN.
func TestSign(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{1, 8, 9, 1000} {
		v := randomValues(rng, n)
		b := AppendCompressed(nil, v, EncSign, 0)
		if len(b) != 4+(n+7)/8 {
			t.Fatalf("%d values in %d bytes", n, len(b))
		}
		var mean float64
		for _, x := range v {
			mean += math.Abs(float64(x))
		}
		mean /= float64(n)
		got := make([]float32, n)
		if err := DecodeFloats(got, b, EncSign); err != nil {
			t.Fatal(err)
		}
		for i, x := range v {
			want := float32(mean)
			if x < 0 {
				want = -want
			}
			if math.Abs(float64(got[i]-want)) > 1e-6*mean {
				t.Fatalf("n=%d: value %d (%g) decoded as %g, want %g", n, i, x, got[i], want)
			}
		}
	}
	got := make([]float32, 3)
	bad := []float32{1, float32(math.NaN()), 2}
	if err := DecodeFloats(got, AppendCompressed(nil, bad, EncSign, 0), EncSign); err != nil || !math.IsNaN(float64(got[0])) || !math.IsNaN(float64(got[2])) {
		t.Errorf("a chunk with a NaN decodes as %v (%v), want NaN", got, err)
	}
	inf := []float32{1, float32(math.Inf(-1)), 2}
	if err := DecodeFloats(got, AppendCompressed(nil, inf, EncSign, 0), EncSign); err != nil || !math.IsNaN(float64(got[0])) {
		t.Errorf("a chunk with an infinity decodes as %v (%v), want NaN", got, err)
	}
}

// TestSignTracks: a receiver that adds sign-encoded changes, sent with
// error feedback, follows a target that drifts like θ under Adam (every
// value a step of about the learning rate, in a direction that persists)
// to within a few steps' movement, and the sender's copy equals the
// receiver's bit for bit.
func TestSignTracks(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const n, steps, lr = 4096, 400, 1e-3
	target, held, shadow := make([]float32, n), make([]float32, n), make([]float32, n)
	dir := make([]float32, n)
	for i := range target {
		target[i] = float32(rng.NormFloat64() * 0.1)
		dir[i] = float32(rng.NormFloat64())
	}
	copy(held, target)
	copy(shadow, target)
	d := make([]float32, n)
	var worst float64
	for step := range steps {
		for i := range target {
			if rng.IntN(20) == 0 {
				dir[i] = float32(rng.NormFloat64())
			}
			target[i] -= lr * float32(math.Tanh(float64(dir[i])*3)+rng.NormFloat64()*0.3)
		}
		for i := range d {
			d[i] = target[i] - shadow[i]
		}
		b := AppendCompressed(nil, d, EncSign, 0)
		if err := DecodeFloats(d, b, EncSign); err != nil {
			t.Fatal(err)
		}
		for i, v := range d {
			shadow[i] += v
		}
		if err := DecodeFloats(d, b, EncSign); err != nil { // the receiver
			t.Fatal(err)
		}
		for i, v := range d {
			held[i] += v
		}
		if step >= steps/2 {
			var rms float64
			for i := range target {
				e := float64(target[i] - held[i])
				rms += e * e
			}
			worst = max(worst, math.Sqrt(rms/n))
		}
	}
	if !slices.Equal(held, shadow) {
		t.Error("the receiver's copy differs from the sender's")
	}
	if worst > 3*lr {
		t.Errorf("the receiver's copy is %g (rms) from the target, want within 3 steps' movement (%g)", worst, 3*lr)
	}
	t.Logf("rms distance after %d steps: %.3g (a step: %g)", steps/2, worst, lr)
}

// TestLossyDecodeErrors: malformed messages are errors, not panics.
func TestLossyDecodeErrors(t *testing.T) {
	dst := make([]float32, 4)
	for name, c := range map[string]struct {
		b []byte
		e Encoding
	}{
		"int8 short":           {[]byte{0, 0, 0x80, 0x3f, 1, 2}, EncInt8},
		"topk empty":           {nil, EncTopK},
		"topk count too large": {AppendCompressed(nil, make([]float32, 8), EncTopK, 1), EncTopK},
		"topk index repeated":  {[]byte{2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, EncTopK},
		"topk index outside":   {[]byte{1, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0}, EncTopK},
		"sign short":           {[]byte{0, 0, 0x80, 0x3f}, EncSign},
		"sign long":            {[]byte{0, 0, 0x80, 0x3f, 1, 2}, EncSign},
	} {
		if err := DecodeFloats(dst, c.b, c.e); err == nil {
			t.Errorf("%s: decoded without an error", name)
		}
	}
}

// TestFeedback: with error feedback, what the messages carried plus what
// is left over equals what was sent, step after step (to float32
// rounding).
func TestFeedback(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n, steps = 3000, 50
	for _, e := range []Encoding{EncInt8, EncTopK, EncSign} {
		f := NewFeedback(e, 0.01, n)
		sent, carried := make([]float64, n), make([]float64, n)
		got := make([]float32, n/2)
		for range steps {
			g := randomValues(rng, n)
			for i, v := range g {
				sent[i] += float64(v)
			}
			for _, lo := range []int{0, n / 2} { // two chunks
				b := f.Append(nil, g[lo:lo+n/2], lo)
				if err := DecodeFloats(got, b, e); err != nil {
					t.Fatal(err)
				}
				for i, v := range got {
					carried[lo+i] += float64(v)
				}
			}
		}
		var worst, scale float64
		for i := range sent {
			worst = max(worst, math.Abs(carried[i]+float64(f.Residual()[i])-sent[i]))
			scale = max(scale, math.Abs(sent[i]))
		}
		if worst > 1e-4*scale {
			t.Errorf("%s: carried + left over is %g from what was sent (of %g)", e, worst, scale)
		}
	}
}
