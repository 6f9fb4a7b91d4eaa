package nn

import (
	"errors"
	"fmt"
	"math"

	"github.com/maas-ml/maas/tensor"
)

// ErrTokenID is wrapped by CheckTokenIDs when an input is not a token id.
var ErrTokenID = errors.New("nn: invalid token id")

// Embedding is PyTorch's nn.Embedding: each sample is a sequence of T token
// ids, stored as float32 values, and becomes (T, E), row id of the weight
// (vocab, E). It is the first layer of a model, as its input is not
// differentiable: Backward adds into the weight gradient and returns nil.
//
// An input that is not an integer in [0, vocab) (a fraction, NaN, an id out
// of range) maps to a zero vector and adds no gradient, as Forward has no
// error to return; check a batch with CheckTokenIDs to refuse one.
type Embedding struct {
	layerBase
	vocab, dim int
	w, dw      []float32 // (vocab, E)
	ids        []float32 // the last input, (n, T)
	y          []float32 // (n, T, E)
}

func newEmbedding(name string, in []int, vocab, dim int, b tensor.Backend) *Embedding {
	return &Embedding{layerBase: layerBase{name: name, in: in, out: []int{in[0], dim}, be: b}, vocab: vocab, dim: dim}
}

func (l *Embedding) Params() []ParamSpec {
	return []ParamSpec{{Name: l.name + ".weight", Shape: []int{l.vocab, l.dim}, Init: InitNormal, FanIn: l.vocab, FanOut: l.dim}}
}

func (l *Embedding) Bind(v, g [][]float32) {
	l.w = v[0]
	if g != nil {
		l.dw = g[0]
	}
}

func (l *Embedding) Forward(x []float32, n int, train bool) []float32 {
	e := l.dim
	l.ids = x[:n*l.in[0]]
	l.y = grow(l.y, len(l.ids)*e)
	for p, v := range l.ids {
		if id, ok := tokenID(v, l.vocab); ok {
			copy(l.y[p*e:(p+1)*e], l.w[id*e:(id+1)*e])
		} else {
			clear(l.y[p*e : (p+1)*e])
		}
	}
	return l.y
}

func (l *Embedding) Backward(dy []float32, n int) []float32 {
	e := l.dim
	for p, v := range l.ids {
		if id, ok := tokenID(v, l.vocab); ok {
			l.be.Axpy(1, dy[p*e:(p+1)*e], l.dw[id*e:(id+1)*e]) // dW[id] += dy[p]
		}
	}
	return nil
}

// tokenID returns v as a row index of a (vocab, E) table, and whether it is one.
func tokenID(v float32, vocab int) (int, bool) {
	f := float64(v)
	if !(f >= 0 && f < float64(vocab)) || f != math.Trunc(f) {
		return 0, false
	}
	return int(f), true
}

// CheckTokenIDs reports the first value of ids that is not a token id of a
// vocab-sized table: an integer in [0, vocab). The error wraps ErrTokenID.
func CheckTokenIDs(ids []float32, vocab int) error {
	for i, v := range ids {
		if _, ok := tokenID(v, vocab); !ok {
			return fmt.Errorf("%w: input %d is %g, want an integer in [0, %d); check the tokenizer's vocabulary size against the embedding's vocab", ErrTokenID, i, v, vocab)
		}
	}
	return nil
}
