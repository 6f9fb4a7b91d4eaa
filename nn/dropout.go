package nn

import (
	"math"

	"github.com/maas-ml/maas/tensor"
)

// Dropout zeroes each input with probability rate while training and scales
// the rest by 1/(1−rate) (inverted dropout), so evaluation is the identity.
// The mask comes from a generator seeded by the model seed and the layer's
// position, so a run is reproducible.
type Dropout struct {
	layerBase
	rate     float32
	rng      splitMix
	mask, y  []float32
	dx       []float32
	lastMask bool // whether the last Forward applied a mask
}

func newDropout(name string, in []int, rate float64, seed uint64, b tensor.Backend) *Dropout {
	return &Dropout{layerBase: layerBase{name: name, in: in, out: in, be: b}, rate: float32(rate), rng: splitMix(seed)}
}

func (l *Dropout) Forward(x []float32, n int, train bool) []float32 {
	size := n * prod(l.in)
	l.lastMask = train && l.rate > 0
	if !l.lastMask {
		return x[:size]
	}
	l.mask, l.y = grow(l.mask, size), grow(l.y, size)
	keep := 1 / (1 - l.rate)
	for i := range l.mask {
		if l.rng.float32() < l.rate {
			l.mask[i] = 0
		} else {
			l.mask[i] = keep
		}
		l.y[i] = x[i] * l.mask[i]
	}
	return l.y
}

func (l *Dropout) Backward(dy []float32, n int) []float32 {
	if !l.needInputGrad {
		return nil
	}
	if !l.lastMask {
		return dy
	}
	l.dx = grow(l.dx, len(l.mask))
	for i, m := range l.mask {
		l.dx[i] = dy[i] * m
	}
	return l.dx
}

// splitMix is the SplitMix64 generator: small, fast and fully specified, so
// streams are identical on every platform and Go version.
type splitMix uint64

func (s *splitMix) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float32 returns a uniform value in [0, 1).
func (s *splitMix) float32() float32 { return float32(s.next()>>40) / (1 << 24) }

// normal returns a standard normal value (Box–Muller).
func (s *splitMix) normal() float64 {
	u1 := (float64(s.next()>>11) + 0.5) / (1 << 53)
	u2 := float64(s.next()>>11) / (1 << 53)
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}
