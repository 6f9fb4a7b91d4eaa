package nn

import (
	"math"
	"math/rand/v2"
)

// Window writes the context of a causal sequence model into x (seqLen
// token ids): the last seqLen ids, from position 0 on, the rest zero. It
// returns the position whose output predicts the next token.
func Window(ids []int32, x []float32) int {
	ctx := ids[max(0, len(ids)-len(x)):]
	clear(x)
	for i, id := range ctx {
		x[i] = float32(id)
	}
	return len(ctx) - 1
}

// Generate extends ids by length tokens sampled from m, a causal model
// over windows of seqLen tokens with vocab outputs per position (see
// Window and Sample).
func Generate(m *Model, ids []int32, seqLen, vocab, length int, temperature float64, rng *rand.Rand) []int32 {
	x := make([]float32, seqLen)
	probs := make([]float64, vocab)
	for range length {
		at := Window(ids, x)
		logits := m.Forward(x, 1, false)
		ids = append(ids, Sample(logits[at*vocab:(at+1)*vocab], probs, temperature, rng))
	}
	return ids
}

// Sample draws a token from softmax(logits / temperature), using probs
// (len(logits)) as scratch; temperature 0 takes the argmax (the first on
// ties).
func Sample(logits []float32, probs []float64, temperature float64, rng *rand.Rand) int32 {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	if temperature == 0 {
		return int32(best)
	}
	var sum float64
	for i, v := range logits {
		probs[i] = math.Exp((float64(v) - float64(logits[best])) / temperature)
		sum += probs[i]
	}
	r := rng.Float64() * sum
	for i, p := range probs[:len(logits)] {
		if r -= p; r < 0 {
			return int32(i)
		}
	}
	return int32(len(logits) - 1)
}
