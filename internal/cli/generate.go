package cli

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/modeldir"
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
			spec, m, err := modeldir.Load(args[0], b)
			if err != nil {
				return err
			}
			f, err := safetensors.ReadFile(filepath.Join(args[0], modeldir.WeightsFile))
			if err != nil {
				return err
			}
			vocab := []rune(f.Metadata[modeldir.VocabKey])
			if spec.Dataset.Kind != "text" || len(vocab) == 0 {
				return fmt.Errorf("%s is not a character-level language model (no vocabulary in its weights)", args[0])
			}
			text := &dataset.Text{Name: spec.Name, Vocab: vocab, SeqLen: spec.Dataset.SeqLen}
			ids, err := text.Encode(prompt)
			if err != nil {
				return fmt.Errorf("--prompt: %w", err)
			}
			// Stream 0: the server samples prompt i of a request from (seed, i).
			out := nn.Generate(m, ids, text.SeqLen, len(vocab), length, temperature, rand.New(rand.NewPCG(seed, 0)))
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
