package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestAdamStep checks AdamStep (the AVX path where there is one) against
// the Go loop bit for bit, and both against the update computed in float64.
func TestAdamStep(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 7, 8, 17, 33, 1000} {
		for _, decoupled := range []bool{false, true} {
			for step := 1; step <= 3; step++ {
				lr, wd := 1e-3, 0.01
				b1, b2, eps := 0.9, 0.999, 1e-8
				bc1, bc2 := 1-math.Pow(b1, float64(step)), 1-math.Pow(b2, float64(step))
				a := NewAdamArgs(b1, b2, eps, wd, lr, int64(step), decoupled)
				p, g, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
				for i := range n {
					p[i], g[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
					m[i], v[i] = float32(0.1*r.NormFloat64()), float32(0.01*r.Float64())
				}
				p2, m2, v2 := append([]float32(nil), p...), append([]float32(nil), m...), append([]float32(nil), v...)
				p0, m0, v0 := append([]float32(nil), p...), append([]float32(nil), m...), append([]float32(nil), v...)
				AdamStep(p, g, m, v, a)
				adamGo(p2, g, m2, v2, a)
				for i := range n {
					if p[i] != p2[i] || m[i] != m2[i] || v[i] != v2[i] {
						t.Fatalf("n=%d decoupled=%v step %d: [%d] AdamStep gives θ %g m %g v %g, the Go loop θ %g m %g v %g",
							n, decoupled, step, i, p[i], m[i], v[i], p2[i], m2[i], v2[i])
					}
					// float64 reference
					th, gi := float64(p0[i]), float64(g[i])
					if decoupled {
						th *= 1 - lr*wd
					} else {
						gi += wd * th
					}
					mi := b1*float64(m0[i]) + (1-b1)*gi
					vi := b2*float64(v0[i]) + (1-b2)*gi*gi
					want := th - lr/bc1*mi/(math.Sqrt(vi)/math.Sqrt(bc2)+eps)
					if math.Abs(float64(p[i])-want) > 1e-6*(1+math.Abs(want)) {
						t.Fatalf("n=%d decoupled=%v step %d: θ[%d] = %g, want %g", n, decoupled, step, i, p[i], want)
					}
				}
			}
		}
	}
}

// TestAdamStepUpdate checks the size of Adam's update itself, from θ = 0,
// against float64 to a few float32 roundings (1e-6 of the update's terms), for
// betas with and without exact float32 forms. It fails when 1−β1 or 1−β2
// is computed in float32 from the rounded betas: for β2 = 0.999 that makes
// every update 6.4e-6 too large, too small to see in θ next to θ's own
// rounding, and large enough to pull a whole training run away from
// PyTorch's (internal/train's TestGoldenTrajectories).
func TestAdamStepUpdate(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const n = 1003
	for _, betas := range [][2]float64{{0.9, 0.999}, {0, 0.999}, {0.5, 0.99}, {0.8, 0.9999}} {
		for step := 1; step <= 5; step++ {
			lr, eps := 1e-3, 1e-8
			b1, b2 := betas[0], betas[1]
			bc1, bc2 := 1-math.Pow(b1, float64(step)), 1-math.Pow(b2, float64(step))
			p, g, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
			for i := range n {
				g[i] = float32(r.NormFloat64())
				m[i], v[i] = float32(0.5*r.NormFloat64()), float32(r.Float64())
			}
			m0, v0 := append([]float32(nil), m...), append([]float32(nil), v...)
			AdamStep(p, g, m, v, NewAdamArgs(b1, b2, eps, 0, lr, int64(step), false))
			for i := range n {
				mi := b1*float64(m0[i]) + (1-b1)*float64(g[i])
				vi := b2*float64(v0[i]) + (1-b2)*float64(g[i])*float64(g[i])
				denom := math.Sqrt(vi)/math.Sqrt(bc2) + eps
				want := -lr / bc1 * mi / denom
				// m's own rounding is relative to its terms, not to m.
				scale := lr / bc1 * (b1*math.Abs(float64(m0[i])) + (1-b1)*math.Abs(float64(g[i]))) / denom
				if e := math.Abs(float64(p[i]) - want); e > 1e-6*scale {
					t.Fatalf("betas %v step %d: update[%d] = %.9g, want %.9g (error %.2g of the update's terms)", betas, step, i, p[i], want, e/scale)
				}
			}
		}
	}
}

// BenchmarkAdamStep is one update of the seed CNN's 241,546 parameters.
func BenchmarkAdamStep(b *testing.B) {
	const n = 241546
	p, g, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range n {
		p[i], g[i] = float32(i%13)*0.01, float32(i%7)*0.001
	}
	a := AdamArgs{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, StepSize: 1e-3, InvSqrtBC2: 1, Decay: 1}
	for _, impl := range []struct {
		name string
		f    func([]float32, []float32, []float32, []float32, AdamArgs)
	}{{"AdamStep", AdamStep}, {"go", adamGo}} {
		b.Run(impl.name, func(b *testing.B) {
			for b.Loop() {
				impl.f(p, g, m, v, a)
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gparams/s")
		})
	}
}
