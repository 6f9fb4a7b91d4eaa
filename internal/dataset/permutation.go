package dataset

// Order is the order in which training visits n samples in epoch: the
// Permutation of (n, seed, epoch) when shuffle is set, else file order.
// As Permutation, it reuses dst when len(dst) == n.
func Order(dst []int, n int, shuffle bool, seed uint64, epoch int) []int {
	if shuffle {
		return Permutation(dst, n, seed, epoch)
	}
	if n <= 0 {
		return dst[:0:0]
	}
	if len(dst) != n {
		dst = make([]int, n)
	}
	for i := range dst {
		dst[i] = i
	}
	return dst
}

// Permutation returns a permutation of 0..n-1 that is a pure function of
// (n, seed, epoch): the order in which training visits the samples in that
// epoch. It uses its own generator (SplitMix64 seeding of xoshiro256**, then
// a Fisher-Yates shuffle with Lemire's unbiased bounded integers), so the
// result is the same on every platform and Go version. If len(dst) == n the
// permutation is written into dst and dst is returned, without allocating;
// otherwise a new slice is allocated. A negative n gives an empty slice.
func Permutation(dst []int, n int, seed uint64, epoch int) []int {
	if n <= 0 {
		return dst[:0:0]
	}
	p := dst
	if len(p) != n {
		p = make([]int, n)
	}
	for i := range p {
		p[i] = i
	}
	r := newRNG(seed, uint64(epoch))
	for i := n - 1; i > 0; i-- {
		j := int(r.bounded(uint64(i) + 1))
		p[i], p[j] = p[j], p[i]
	}
	return p
}
