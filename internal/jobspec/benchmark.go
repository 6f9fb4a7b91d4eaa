package jobspec

import (
	"math"
	"time"
)

// Benchmark makes a cluster job a benchmark of the data plane (see
// docs/scaling.md): each worker waits for the compute time of its slice
// instead of computing it, then pushes a gradient of the model's size,
// while NATS, the parameter servers (aggregation and optimizer), the
// barrier and the fan-out of θ do their real work. Dozens of workers then
// fit on a few cores. The model it trains learns nothing: it is for
// measuring, not for serving.
type Benchmark struct {
	// SyntheticCompute is the compute time of one sample of a worker's
	// slice, e.g. "700us" (measure it with `maas bench train`: one step's
	// time over its batch). A worker with n samples of a step waits
	// n × SyntheticCompute × Dilation.
	SyntheticCompute string `yaml:"synthetic_compute" json:"synthetic_compute"`
	// Dilation (default 1) multiplies every compute wait: with the links
	// between hosts slowed by the same factor, a run on an emulated
	// cluster keeps the ratio of compute to communication of the real one
	// while the machine's cores stay idle enough not to be the bottleneck.
	Dilation float64 `yaml:"dilation,omitempty" json:"dilation,omitempty"`
}

// SyntheticCompute returns the wait for one sample of a worker's slice
// (SyntheticCompute × Dilation), or 0 when the job computes for real.
func (s *Spec) SyntheticCompute() time.Duration {
	b := s.Benchmark
	if b == nil {
		return 0
	}
	d, err := time.ParseDuration(b.SyntheticCompute)
	if err != nil || d <= 0 {
		return 0
	}
	return b.Dilate(d)
}

// Dilate returns d × Dilation.
func (b *Benchmark) Dilate(d time.Duration) time.Duration {
	if b.Dilation == 0 {
		return d
	}
	return time.Duration(float64(d) * b.Dilation)
}

func (b *Benchmark) validate() error {
	d, err := time.ParseDuration(b.SyntheticCompute)
	if err != nil || d <= 0 {
		return fieldErr("benchmark.synthetic_compute", "%q is not a positive duration such as \"700us\" (one sample's compute time)", b.SyntheticCompute)
	}
	if math.IsNaN(b.Dilation) || math.IsInf(b.Dilation, 0) || b.Dilation != 0 && b.Dilation < 1 || b.Dilation > 1000 {
		return fieldErr("benchmark.dilation", "must be from 1 to 1000, got %g", b.Dilation)
	}
	return nil
}
