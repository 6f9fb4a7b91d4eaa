package cli

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/train"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/nn/safetensors"
)

func generateCmd() *cobra.Command {
	var (
		prompt      string
		length      int
		temperature float64
		seed        uint64
		threads     int
	)
	cmd := &cobra.Command{
		Use:   "generate DIR --prompt TEXT",
		Short: "Sample text from a trained character-level language model",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if length < 0 || temperature < 0 || prompt == "" {
				return fmt.Errorf("--prompt must not be empty, --length and --temperature must not be negative")
			}
			b, err := newBackend(threads)
			if err != nil {
				return err
			}
			defer b.Close()
			spec, m, err := train.Load(args[0], b)
			if err != nil {
				return err
			}
			f, err := safetensors.ReadFile(filepath.Join(args[0], train.WeightsFile))
			if err != nil {
				return err
			}
			vocab := []rune(f.Metadata["vocab"])
			if spec.Dataset.Kind != "text" || len(vocab) == 0 {
				return fmt.Errorf("%s is not a character-level language model (no vocabulary in its weights)", args[0])
			}
			text := &dataset.Text{Name: spec.Name, Vocab: vocab, SeqLen: spec.Dataset.SeqLen}
			ids, err := text.Encode(prompt)
			if err != nil {
				return fmt.Errorf("--prompt: %w", err)
			}
			out := generate(m, ids, text.SeqLen, len(vocab), length, temperature, rand.New(rand.NewPCG(seed, 0x6d616173)))
			fmt.Fprintln(cmd.OutOrStdout(), text.Decode(out))
			return nil
		},
	}
	cmd.Flags().StringVar(&prompt, "prompt", "", "text to continue")
	cmd.Flags().IntVar(&length, "length", 200, "characters to generate")
	cmd.Flags().Float64Var(&temperature, "temperature", 1, "sampling temperature (0: always the most likely character)")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "random seed")
	cmd.Flags().IntVar(&threads, "threads", 1, "cores to use")
	return cmd
}

// generate extends ids by length tokens sampled from the model. The model
// is causal, so a context shorter than its window sits at the start and
// the next token is read at the context's last position; a longer one is
// cut to the last seqLen tokens.
func generate(m *nn.Model, ids []int32, seqLen, vocab, length int, temperature float64, rng *rand.Rand) []int32 {
	x := make([]float32, seqLen)
	probs := make([]float64, vocab)
	for range length {
		ctx := ids[max(0, len(ids)-seqLen):]
		clear(x)
		for i, id := range ctx {
			x[i] = float32(id)
		}
		logits := m.Forward(x, 1, false)
		row := logits[(len(ctx)-1)*vocab : len(ctx)*vocab]
		ids = append(ids, sample(row, probs, temperature, rng))
	}
	return ids
}

// sample draws from softmax(logits / temperature); temperature 0 takes the
// argmax.
func sample(logits []float32, probs []float64, temperature float64, rng *rand.Rand) int32 {
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
	for i, p := range probs {
		if r -= p; r < 0 {
			return int32(i)
		}
	}
	return int32(len(probs) - 1)
}
