package jobspec

import (
	"slices"
	"strings"

	"github.com/maas-ml/maas/internal/wire"
)

// Compression says how a cluster job's gradients travel to the parameter
// servers.
type Compression struct {
	// Type is none (the default: float32), fp16 (IEEE half precision) or
	// bf16 (bfloat16): each halves the bytes of every gradient push, the
	// values rounded to nearest (fp16: beyond ±65504 infinite, which the
	// servers skip as a non-finite step).
	Type string `yaml:"type" json:"type"`
}

// Compressions lists the compression types.
var Compressions = []string{"none", "fp16", "bf16"}

// Encoding is the wire encoding of the job's gradient pushes.
func (s *Spec) Encoding() wire.Encoding {
	if c := s.Compression; c != nil {
		switch c.Type {
		case "fp16":
			return wire.EncFloat16
		case "bf16":
			return wire.EncBFloat16
		}
	}
	return wire.EncFloat32
}

func (c *Compression) validate() error {
	if !slices.Contains(Compressions, c.Type) {
		return fieldErr("compression.type", "unknown compression %q; one of %s", c.Type, strings.Join(Compressions, ", "))
	}
	return nil
}

// Aggregations lists the values of a spec's aggregation.
var Aggregations = []string{"none", "host"}

// AggregatesPerHost reports whether the job's workers sum their
// gradients per host before pushing.
func (s *Spec) AggregatesPerHost() bool { return s.Aggregation == "host" }
