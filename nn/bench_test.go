package nn

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/maas-ml/maas/tensor"
)

// BenchmarkInference is the forward pass of the seed CNN built for
// inference (no gradient buffers), at batch 1 and 64, on 1 and 2 threads.
func BenchmarkInference(b *testing.B) {
	for _, in := range [][]int{{1, 28, 28}, {3, 32, 32}} {
		for _, threads := range []int{1, 2} {
			for _, n := range []int{1, 64} {
				name := fmt.Sprintf("%dx%dx%d/threads=%d/batch=%d", in[0], in[1], in[2], threads, n)
				b.Run(name, func(b *testing.B) {
					be := tensor.NewGo(threads)
					defer be.Close()
					m, err := BuildInference(seedCNN(in), be)
					if err != nil {
						b.Fatal(err)
					}
					m.Init(1)
					x := make([]float32, n*prod(in))
					r := rand.New(rand.NewPCG(1, 2))
					for i := range x {
						x[i] = float32(r.NormFloat64())
					}
					m.Forward(x, n, false)
					b.ReportAllocs()
					b.ResetTimer()
					for b.Loop() {
						m.Forward(x, n, false)
					}
					b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "samples/s")
				})
			}
		}
	}
}
