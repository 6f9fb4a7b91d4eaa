package tensor

import "testing"

// TestAddTo checks the vector add (AVX2 with a masked tail, or Go) on
// every length up to 40 against the plain loop, with guard values on both
// sides of dst that must stay untouched.
func TestAddTo(t *testing.T) {
	for n := 0; n <= 40; n++ {
		buf := make([]float32, n+16)
		src := make([]float32, n+8)
		for i := range buf {
			buf[i] = 1000 + float32(i)
		}
		for i := range src {
			src[i] = float32(i) * 0.5
		}
		addTo(buf[8:8+n], src[:n])
		for i, v := range buf {
			want := 1000 + float32(i)
			if i >= 8 && i < 8+n {
				want += float32(i-8) * 0.5
			}
			if v != want {
				t.Fatalf("n=%d: buf[%d] = %g, want %g", n, i, v, want)
			}
		}
	}
}
