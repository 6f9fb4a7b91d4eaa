package dataset

import "math/bits"

// The generator here is fixed by this package, not by math/rand, so that
// Permutation and Synthetic give the same results on every platform and Go
// version. Changing any constant or step changes the training data order;
// the golden values in the tests catch that.

// splitmix64 advances *s and returns the next SplitMix64 output
// (Steele, Lea & Flood 2014).
func splitmix64(s *uint64) uint64 {
	*s += 0x9e3779b97f4a7c15
	z := *s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// rng is xoshiro256** (Blackman & Vigna 2018).
type rng struct{ s [4]uint64 }

// newRNG derives a generator from a seed and a stream number (the epoch)
// by mixing them through SplitMix64.
func newRNG(seed uint64, stream uint64) rng {
	sm := seed
	k := splitmix64(&sm) ^ stream
	sm = k
	var r rng
	for i := range r.s {
		r.s[i] = splitmix64(&sm)
	}
	return r
}

// next returns the next 64 random bits.
func (r *rng) next() uint64 {
	s := &r.s
	result := bits.RotateLeft64(s[1]*5, 7) * 9
	t := s[1] << 17
	s[2] ^= s[0]
	s[3] ^= s[1]
	s[1] ^= s[2]
	s[0] ^= s[3]
	s[2] ^= t
	s[3] = bits.RotateLeft64(s[3], 45)
	return result
}

// bounded returns a uniform integer in [0, n) for n > 0, using Lemire's
// multiply-shift with rejection (no modulo bias).
func (r *rng) bounded(n uint64) uint64 {
	hi, lo := bits.Mul64(r.next(), n)
	if lo < n {
		thresh := -n % n // 2^64 mod n
		for lo < thresh {
			hi, lo = bits.Mul64(r.next(), n)
		}
	}
	return hi
}
