package jobspec

import (
	"math"
	"slices"
	"strings"

	"github.com/maas-ml/maas/internal/wire"
)

// Compression says how a cluster job's gradients travel to the
// parameter servers.
type Compression struct {
	// Type is none (the default: float32), fp16 (IEEE half precision),
	// bf16 (bfloat16), int8 (a byte a value and a scale a bucket) or topk
	// (the Ratio of each bucket's values of largest magnitude). fp16 and
	// bf16 round to nearest (fp16: beyond ±65504 infinite, which the
	// servers skip as a non-finite step). int8 and topk keep what they
	// leave out of a push and add it to the next one (error feedback).
	Type string `yaml:"type" json:"type"`
	// Ratio is the share of each bucket's values topk sends (default
	// 0.01, at most 1).
	Ratio float64 `yaml:"ratio,omitempty" json:"ratio,omitempty"`
}

// Compressions lists the compression types.
var Compressions = []string{"none", "fp16", "bf16", "int8", "topk"}

// DefaultTopKRatio is topk's default share of values sent.
const DefaultTopKRatio = 0.01

// Encoding is the wire encoding of the job's gradient pushes.
func (s *Spec) Encoding() wire.Encoding {
	if c := s.Compression; c != nil {
		switch c.Type {
		case "fp16":
			return wire.EncFloat16
		case "bf16":
			return wire.EncBFloat16
		case "int8":
			return wire.EncInt8
		case "topk":
			return wire.EncTopK
		}
	}
	return wire.EncFloat32
}

// ParamEncoding is the encoding of the change of θ a compressed job's
// parameter servers fan out after each step: the pushes' (for topk a bit
// a value, wire.EncSign: θ's change is dense, every value moving each
// step under Adam), or "" (float32, whole) without compression.
func (s *Spec) ParamEncoding() wire.Encoding {
	switch e := s.Encoding(); e {
	case wire.EncTopK:
		return wire.EncSign
	default:
		return e
	}
}

// TopKRatio is the share of values a topk job sends.
func (s *Spec) TopKRatio() float64 {
	if c := s.Compression; c != nil && c.Ratio > 0 {
		return c.Ratio
	}
	return DefaultTopKRatio
}

func (c *Compression) validate() error {
	if !slices.Contains(Compressions, c.Type) {
		return fieldErr("compression.type", "unknown compression %q; one of %s", c.Type, strings.Join(Compressions, ", "))
	}
	switch {
	case c.Ratio != 0 && c.Type != "topk":
		return fieldErr("compression.ratio", "only topk takes a ratio; this is %s", c.Type)
	case c.Ratio < 0 || c.Ratio > 1 || math.IsNaN(c.Ratio):
		return fieldErr("compression.ratio", "must be in (0, 1], got %g", c.Ratio)
	}
	return nil
}

// Aggregations lists the values of a spec's aggregation.
var Aggregations = []string{"none", "host"}

// AggregatesPerHost reports whether the job's workers sum their
// gradients per host before pushing.
func (s *Spec) AggregatesPerHost() bool { return s.Aggregation == "host" }

// Overlaps lists the values of a spec's overlap.
var Overlaps = []string{"backward", "none"}

// Overlaps reports whether the job's workers overlap their pushes with
// backward and their next forward with the fan-out of θ.
func (s *Spec) Overlaps() bool { return s.Overlap != "none" }

// Bucket sizes: the default, and the bounds (a bucket and its message
// header fit NATS's default 1 MiB max_payload).
const (
	DefaultBucketKB = 128
	MinBucketKB     = 4
	MaxBucketKB     = 960
)

// BucketFloats is the job's bucket size in float32s.
func (s *Spec) BucketFloats() int {
	kb := s.BucketKB
	if kb == 0 {
		kb = DefaultBucketKB
	}
	return kb * 1024 / 4
}
