package nn

import "math"

// Initialisers a ParamSpec may name.
const (
	// InitHe draws from U(−b, b) with b = √(6 / fan_in) (He/Kaiming uniform,
	// gain √2): the choice for layers followed by a ReLU.
	InitHe = "he"
	// InitGlorot draws from U(−b, b) with b = √(6 / (fan_in + fan_out))
	// (Glorot/Xavier uniform): the choice for the output layer.
	InitGlorot = "glorot"
	// InitTorch is PyTorch's default for Linear and Conv2d:
	// U(−1/√fan_in, 1/√fan_in), for weights and biases alike.
	InitTorch = "torch"
	// InitZero fills zeros (biases, unless InitTorch is asked for).
	InitZero = "zero"
	// InitNormal draws from N(0, 1): PyTorch's default for Embedding, kept
	// under either model init.
	InitNormal = "normal"
)

// initParam fills v according to p.Init, drawing from rng.
func initParam(v []float32, p ParamSpec, rng *splitMix) {
	var bound float64
	switch p.Init {
	case InitZero:
		clear(v)
		return
	case InitNormal:
		for i := range v {
			v[i] = float32(rng.normal())
		}
		return
	case InitHe:
		bound = math.Sqrt(6 / float64(p.FanIn))
	case InitGlorot:
		bound = math.Sqrt(6 / float64(p.FanIn+p.FanOut))
	case InitTorch:
		bound = 1 / math.Sqrt(float64(p.FanIn))
	}
	for i := range v {
		v[i] = float32((2*float64(rng.float32()) - 1) * bound)
	}
}
