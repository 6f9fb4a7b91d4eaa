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

// BenchmarkConv2D is the forward convolution of each seed CNN layer at
// batch 64 (bias and ReLU fused), GFLOP/s counting 2·OC·C·KH·KW·OH·OW per
// image.
func BenchmarkConv2D(b *testing.B) {
	layers := []struct {
		name string
		oc   int
		g    tensor.ConvGeom
	}{
		{"1x28/conv1", 32, tensor.ConvGeom{C: 1, H: 28, W: 28, KH: 3, KW: 3, SH: 1, SW: 1, PH: 1, PW: 1}},
		{"1x28/conv2", 64, tensor.ConvGeom{C: 32, H: 14, W: 14, KH: 3, KW: 3, SH: 1, SW: 1, PH: 1, PW: 1}},
		{"1x28/conv3", 128, tensor.ConvGeom{C: 64, H: 7, W: 7, KH: 3, KW: 3, SH: 1, SW: 1, PH: 1, PW: 1}},
		{"3x32/conv1", 32, tensor.ConvGeom{C: 3, H: 32, W: 32, KH: 3, KW: 3, SH: 1, SW: 1, PH: 1, PW: 1}},
		{"3x32/conv2", 64, tensor.ConvGeom{C: 32, H: 16, W: 16, KH: 3, KW: 3, SH: 1, SW: 1, PH: 1, PW: 1}},
		{"3x32/conv3", 128, tensor.ConvGeom{C: 64, H: 8, W: 8, KH: 3, KW: 3, SH: 1, SW: 1, PH: 1, PW: 1}},
	}
	const n = 64
	for _, threads := range []int{1, 2} {
		be := tensor.NewGo(threads)
		for _, l := range layers {
			g := l.g
			x := make([]float32, n*g.C*g.H*g.W)
			for i := range x {
				x[i] = float32(i%7) - 3
			}
			w := &tensor.Packed{W: make([]float32, l.oc*g.Rows()), Rows: l.oc, K: g.Rows(), Left: true}
			for i := range w.W {
				w.W[i] = float32(i%5) * 0.1
			}
			be.Pack(w)
			bias := make([]float32, l.oc)
			y := make([]float32, n*l.oc*g.OH()*g.OW())
			b.Run(fmt.Sprintf("%s/threads=%d", l.name, threads), func(b *testing.B) {
				flops := 2 * float64(n*l.oc*g.Rows()*g.OH()*g.OW())
				for b.Loop() {
					be.Conv2D(g, n, x, w, bias, true, y)
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
		be.Close()
	}
}
