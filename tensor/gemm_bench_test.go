package tensor_test

import (
	"fmt"
	"testing"

	"github.com/maas-ml/maas/tensor"
)

// BenchmarkGemm sweeps square sizes and the shapes the seed CNN produces
// (forward, weight gradient, input gradient of conv2/conv3 at batch 64);
// ns/op and GFLOP/s are reported per thread count.
func BenchmarkGemm(b *testing.B) {
	shapes := []struct {
		name    string
		tA, tB  bool
		m, n, k int
	}{
		{"sq256", false, false, 256, 256, 256},
		{"sq512", false, false, 512, 512, 512},
		{"sq1024", false, false, 1024, 1024, 1024},
		{"sq2048", false, false, 2048, 2048, 2048},
		{"conv2fwd", false, false, 64, 12544, 288},
		{"conv2dW", false, true, 64, 288, 12544},
		{"conv2dX", true, false, 288, 12544, 64},
		{"conv3fwd", false, false, 128, 3136, 576},
		{"fc1fwd", false, true, 64, 128, 1152},
	}
	for _, threads := range []int{1, 2} {
		be := tensor.NewGo(threads)
		for _, s := range shapes {
			rowsA, colsA := s.m, s.k
			if s.tA {
				rowsA, colsA = s.k, s.m
			}
			rowsB, colsB := s.k, s.n
			if s.tB {
				rowsB, colsB = s.n, s.k
			}
			a := make([]float32, rowsA*colsA)
			bb := make([]float32, rowsB*colsB)
			c := make([]float32, s.m*s.n)
			for i := range a {
				a[i] = float32(i%7) * 0.1
			}
			for i := range bb {
				bb[i] = float32(i%5) * 0.1
			}
			b.Run(fmt.Sprintf("%s/threads=%d", s.name, threads), func(b *testing.B) {
				flops := 2 * float64(s.m) * float64(s.n) * float64(s.k)
				for b.Loop() {
					be.Gemm(s.tA, s.tB, s.m, s.n, s.k, 1, a, colsA, bb, colsB, 0, c, s.n)
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
		be.Close()
	}
}
