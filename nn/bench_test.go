package nn

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

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

// BenchmarkTrainLayers is one training step of the seed CNN (batch 64,
// forward, loss, backward) with each layer's forward and backward time
// reported per step, in µs, to show where a step goes.
func BenchmarkTrainLayers(b *testing.B) {
	for _, in := range [][]int{{1, 28, 28}, {3, 32, 32}} {
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%dx%dx%d/threads=%d", in[0], in[1], in[2], threads), func(b *testing.B) {
				const n = 64
				be := tensor.NewGo(threads)
				defer be.Close()
				m, err := Build(seedCNN(in), be)
				if err != nil {
					b.Fatal(err)
				}
				m.Init(1)
				x := make([]float32, n*prod(in))
				y := make([]int32, n)
				r := rand.New(rand.NewPCG(1, 2))
				for i := range x {
					x[i] = float32(r.NormFloat64())
				}
				for i := range y {
					y[i] = int32(r.IntN(10))
				}
				loss := NewSoftmaxCrossEntropy(be, 10)
				fwd := make([]time.Duration, len(m.Layers))
				bwd := make([]time.Duration, len(m.Layers))
				step := func() {
					m.ZeroGrad()
					h := x
					for i, l := range m.Layers {
						t0 := time.Now()
						h = l.Forward(h, n, true)
						fwd[i] += time.Since(t0)
					}
					loss.Forward(h, y, n)
					d := loss.Backward()
					for i := len(m.Layers) - 1; i >= 0; i-- {
						t0 := time.Now()
						d = m.Layers[i].Backward(d, n)
						bwd[i] += time.Since(t0)
					}
				}
				step()
				clear(fwd)
				clear(bwd)
				b.ResetTimer()
				for b.Loop() {
					step()
				}
				for i, l := range m.Layers {
					b.ReportMetric(float64(fwd[i].Microseconds())/float64(b.N), l.Name()+"-fwd-µs")
					b.ReportMetric(float64(bwd[i].Microseconds())/float64(b.N), l.Name()+"-bwd-µs")
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "samples/s")
			})
		}
	}
}
