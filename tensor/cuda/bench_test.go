package cuda

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/maas-ml/maas/tensor"
)

// Benchmarks on the GPU (skipped without one), through the tensor.Backend
// API: each includes the copies of its host slices to and from the device.
// They report GFLOP/s; bench/gpu.sh runs them beside PyTorch.

func BenchmarkGPUGemm(b *testing.B) {
	be := openGPUOrSkipB(b)
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range []int{128, 512, 1024, 2048} {
		b.Run(fmt.Sprint(s), func(b *testing.B) {
			x, y, c := randFloats(r, s*s), randFloats(r, s*s), make([]float32, s*s)
			b.SetBytes(int64(3 * 4 * s * s))
			for b.Loop() {
				be.Gemm(false, true, s, s, s, 1, x, s, y, s, 0, c, s)
			}
			b.ReportMetric(2*float64(s*s*s)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkGPUConv2D runs the seed CNN's three convolutions (3x32x32
// input) forward and backward at batch 64.
func BenchmarkGPUConv2D(b *testing.B) {
	be := openGPUOrSkipB(b)
	r := rand.New(rand.NewPCG(3, 4))
	const n = 64
	for _, l := range []struct {
		g  tensor.ConvGeom
		oc int
	}{
		{tensor.ConvGeom{C: 3, H: 32, W: 32, KH: 3, KW: 3, SH: 1, SW: 1, PH: 1, PW: 1}, 32},
		{tensor.ConvGeom{C: 32, H: 16, W: 16, KH: 3, KW: 3, SH: 1, SW: 1, PH: 1, PW: 1}, 64},
		{tensor.ConvGeom{C: 64, H: 8, W: 8, KH: 3, KW: 3, SH: 1, SW: 1, PH: 1, PW: 1}, 128},
	} {
		g, oc := l.g, l.oc
		p := g.OH() * g.OW()
		x, w, bias := randFloats(r, n*g.C*g.H*g.W), randFloats(r, oc*g.Rows()), randFloats(r, oc)
		y, dw, db, dx := make([]float32, n*oc*p), make([]float32, oc*g.Rows()), make([]float32, oc), make([]float32, len(x))
		pw := &tensor.Packed{W: w, Rows: oc, K: g.Rows(), Left: true}
		flops := 2 * float64(n*p*oc*g.Rows())
		b.Run(fmt.Sprintf("fwd-C%d-OC%d", g.C, oc), func(b *testing.B) {
			for b.Loop() {
				be.Conv2D(g, n, x, pw, bias, true, y)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		b.Run(fmt.Sprintf("bwd-C%d-OC%d", g.C, oc), func(b *testing.B) {
			for b.Loop() {
				be.Conv2DBackward(g, n, x, w, y, dw, db, dx)
			}
			b.ReportMetric(2*flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

func openGPUOrSkipB(b *testing.B) *Backend {
	b.Helper()
	be, err := Open("cuda", Options{})
	if err != nil {
		b.Skip(err.Error())
	}
	b.Cleanup(func() { be.Close() })
	return be
}
