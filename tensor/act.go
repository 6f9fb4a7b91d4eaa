package tensor

import "math"

// Sigmoid and Tanh run 8 lanes at a time with AVX2 (act_amd64.s: a
// polynomial exp, as Cephes' expf), the rest through math.Exp and
// math.Tanh. They are called on one gate row at a time by the recurrent
// layers, so they are not split across the pool.

func (g *GoBackend) Sigmoid(x, y []float32) {
	y = y[:len(x)]
	copy(y, x) // y may be x
	n := 0
	if hasAVX2FMA && g.kern == simdKernel {
		n = len(y) &^ 7
		if n > 0 {
			sigmoidAVX(&y[0], n)
		}
	}
	for i := n; i < len(y); i++ {
		y[i] = float32(1 / (1 + math.Exp(-float64(y[i]))))
	}
}

func (g *GoBackend) Tanh(x, y []float32) {
	y = y[:len(x)]
	copy(y, x)
	n := 0
	if hasAVX2FMA && g.kern == simdKernel {
		n = len(y) &^ 7
		if n > 0 {
			tanhAVX(&y[0], n)
		}
	}
	for i := n; i < len(y); i++ {
		y[i] = float32(math.Tanh(float64(y[i])))
	}
}
