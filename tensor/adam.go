package tensor

import "math"

// AdamArgs are the constants of one Adam step (see AdamStep). Each is
// the float32 rounding of a value computed in float64 (NewAdamArgs): in
// particular 1−β1 and 1−β2 are not computed in float32 from the rounded
// betas, which would scale every update by a constant factor (for β2 =
// 0.999, 1 − float32(β2) is 1.3e-5 below 0.001, so every update would be
// 6.4e-6 too large, the same sign and size for every parameter: a bias that
// adds up coherently over steps and layers, where rounding errors do not).
type AdamArgs struct {
	Beta1, Beta2           float32 // moment decays
	OneMinusB1, OneMinusB2 float32 // 1−β1 and 1−β2
	Eps                    float32
	StepSize               float32 // lr / (1 − β1ᵗ)
	InvSqrtBC2             float32 // 1 / √(1 − β2ᵗ)
	WeightDecay            float32 // added to the gradient as wd·θ (Adam)
	Decay                  float32 // θ's factor 1 − lr·wd (AdamW)
	Decoupled              bool    // AdamW: θ decays; else the gradient takes wd·θ
}

// NewAdamArgs returns the constants of Adam's step t (1-based) at learning
// rate lr, as PyTorch's torch.optim.Adam and AdamW compute them: in
// float64, each rounded once to float32.
func NewAdamArgs(beta1, beta2, eps, weightDecay, lr float64, t int64, decoupled bool) AdamArgs {
	bc1 := 1 - math.Pow(beta1, float64(t))
	bc2 := 1 - math.Pow(beta2, float64(t))
	return AdamArgs{
		Beta1: float32(beta1), Beta2: float32(beta2), OneMinusB1: float32(1 - beta1), OneMinusB2: float32(1 - beta2),
		Eps: float32(eps), StepSize: float32(lr / bc1), InvSqrtBC2: float32(1 / math.Sqrt(bc2)),
		WeightDecay: float32(weightDecay), Decay: float32(1 - lr*weightDecay), Decoupled: decoupled,
	}
}

// AdamStep applies one Adam (or AdamW) update to params in place, with
// moments m and v, elementwise for i < len(grads):
//
//	θ ← θ·Decay (Decoupled), or g ← g + wd·θ
//	m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g·g
//	θ ← θ − StepSize·m / (√v·InvSqrtBC2 + ε)
//
// in float32, each operation rounded in that order (no fused multiply-adds),
// so the AVX path and the Go loop give the same bits.
func AdamStep(params, grads, m, v []float32, a AdamArgs) {
	n := len(grads)
	params, m, v = params[:n], m[:n], v[:n]
	if hasAVX2FMA && n >= 8 {
		k := n &^ 7
		c := [10]float32{a.Beta1, a.OneMinusB1, a.Beta2, a.OneMinusB2, a.Eps, a.StepSize, a.InvSqrtBC2, a.WeightDecay, a.Decay}
		if a.Decoupled {
			c[9] = 1
		}
		adamAVX(&params[0], &grads[0], &m[0], &v[0], k, &c[0])
		params, grads, m, v = params[k:], grads[k:], m[k:], v[k:]
	}
	adamGo(params, grads, m, v, a)
}

func adamGo(params, grads, m, v []float32, a AdamArgs) {
	b1, b2 := a.Beta1, a.Beta2
	omb1, omb2 := a.OneMinusB1, a.OneMinusB2
	for i, g := range grads {
		p := params[i]
		// The conversions round every product, so that no compiler fuses
		// them into multiply-adds (the AVX path does not either).
		if a.Decoupled {
			p *= a.Decay
		} else {
			g += float32(a.WeightDecay * p)
		}
		mi := float32(b1*m[i]) + float32(omb1*g)
		vi := float32(b2*v[i]) + float32(float32(omb2*g)*g)
		m[i], v[i] = mi, vi
		denom := float32(float32(math.Sqrt(float64(vi)))*a.InvSqrtBC2) + a.Eps
		params[i] = p - float32(a.StepSize*mi)/denom
	}
}
