package tensor

import "math"

// AdamArgs are the constants of one Adam step (see AdamStep).
type AdamArgs struct {
	Beta1, Beta2 float32 // moment decays
	Eps          float32
	StepSize     float32 // lr / (1 − β1ᵗ)
	InvSqrtBC2   float32 // 1 / √(1 − β2ᵗ)
	WeightDecay  float32 // added to the gradient as wd·θ (Adam)
	Decay        float32 // θ's factor 1 − lr·wd (AdamW)
	Decoupled    bool    // AdamW: θ decays; else the gradient takes wd·θ
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
		c := [10]float32{a.Beta1, 1 - a.Beta1, a.Beta2, 1 - a.Beta2, a.Eps, a.StepSize, a.InvSqrtBC2, a.WeightDecay, a.Decay}
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
	omb1, omb2 := 1-b1, 1-b2
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
