package dataset

import (
	"slices"
	"testing"
)

func isPermutation(p []int, n int) bool {
	if len(p) != n {
		return false
	}
	seen := make([]bool, n)
	for _, v := range p {
		if v < 0 || v >= n || seen[v] {
			return false
		}
		seen[v] = true
	}
	return true
}

func TestPermutationIsPermutation(t *testing.T) {
	for _, n := range []int{1, 2, 3, 10, 97, 1000, 60000} {
		for seed := uint64(0); seed < 3; seed++ {
			if p := Permutation(nil, n, seed, int(seed)); !isPermutation(p, n) {
				t.Fatalf("Permutation(n=%d, seed=%d) is not a permutation", n, seed)
			}
		}
	}
}

func TestPermutationDeterministic(t *testing.T) {
	a := Permutation(nil, 5000, 7, 2)
	b := Permutation(make([]int, 10), 5000, 7, 2) // wrong length: reallocated
	if !slices.Equal(a, b) {
		t.Fatal("same inputs gave different permutations")
	}
	for _, other := range [][]int{
		Permutation(nil, 5000, 7, 3),
		Permutation(nil, 5000, 8, 2),
		Permutation(nil, 5000, 7, -2),
	} {
		if slices.Equal(a, other) {
			t.Fatal("different seed or epoch gave the same permutation")
		}
	}
}

func TestPermutationReusesDst(t *testing.T) {
	dst := make([]int, 1000)
	want := Permutation(nil, 1000, 3, 1)
	got := Permutation(dst, 1000, 3, 1)
	if &got[0] != &dst[0] || !slices.Equal(got, want) {
		t.Fatal("Permutation did not write into dst")
	}
	if allocs := testing.AllocsPerRun(10, func() { Permutation(dst, 1000, 3, 1) }); allocs != 0 {
		t.Errorf("Permutation with len(dst) == n allocates %v times, want 0", allocs)
	}
}

func TestPermutationEdgeCases(t *testing.T) {
	for _, n := range []int{0, -1, -100} {
		if p := Permutation(nil, n, 1, 0); len(p) != 0 {
			t.Errorf("Permutation(n=%d) = %v, want empty", n, p)
		}
	}
	if p := Permutation(nil, 1, 1, 0); !slices.Equal(p, []int{0}) {
		t.Errorf("Permutation(n=1) = %v", p)
	}
}

// TestPermutationGolden pins the algorithm: these values must never change,
// or training runs stop being reproducible.
func TestPermutationGolden(t *testing.T) {
	tests := []struct {
		n     int
		seed  uint64
		epoch int
		want  []int
	}{
		{10, 1, 0, []int{3, 5, 2, 8, 0, 6, 4, 1, 7, 9}},
		{60000, 42, 3, []int{14088, 36693, 58423, 13925, 32621, 57927, 8164, 33479, 21218, 58698}},
	}
	for _, tt := range tests {
		if got := Permutation(nil, tt.n, tt.seed, tt.epoch)[:10]; !slices.Equal(got, tt.want) {
			t.Errorf("Permutation(n=%d, seed=%d, epoch=%d)[:10] = %v, want %v", tt.n, tt.seed, tt.epoch, got, tt.want)
		}
	}
}

// TestPermutationUniform checks that the value at position 0 is roughly
// uniform over many seeds (chi-square with n-1 degrees of freedom).
func TestPermutationUniform(t *testing.T) {
	const n, trials = 10, 20000
	var counts [n]int
	for seed := uint64(0); seed < trials; seed++ {
		counts[Permutation(nil, n, seed, 5)[0]]++
	}
	exp := float64(trials) / n
	chi2 := 0.0
	for _, c := range counts {
		d := float64(c) - exp
		chi2 += d * d / exp
	}
	// For 9 degrees of freedom, P(chi2 > 33.7) = 1e-4.
	if chi2 > 33.7 {
		t.Errorf("position 0 counts %v: chi-square %.1f, want < 33.7", counts, chi2)
	}
}

// TestRNGReference checks the generators against their published outputs.
func TestRNGReference(t *testing.T) {
	var s uint64
	if got := splitmix64(&s); got != 0xe220a8397b1dcdaf {
		t.Errorf("splitmix64(0) = %#x, want 0xe220a8397b1dcdaf", got)
	}
	r := rng{s: [4]uint64{1, 2, 3, 4}}
	want := []uint64{11520, 0, 1509978240, 1215971899390074240}
	for i, w := range want {
		if got := r.next(); got != w {
			t.Errorf("xoshiro256** output %d = %d, want %d", i, got, w)
		}
	}
}

func TestRNGBounded(t *testing.T) {
	r := newRNG(9, 0)
	for _, n := range []uint64{1, 2, 3, 7, 1 << 32, 1<<63 + 1, ^uint64(0)} {
		for range 100 {
			if v := r.bounded(n); v >= n {
				t.Fatalf("bounded(%d) = %d", n, v)
			}
		}
	}
}
