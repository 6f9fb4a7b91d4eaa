package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/maas-ml/maas/internal/modeldir"
	"github.com/maas-ml/maas/internal/train"
)

func evalCmd() *cobra.Command {
	var (
		data, dataDir string
		batch         int
		threads       int
		asJSON        bool
	)
	cmd := &cobra.Command{
		Use:   "eval DIR --data mnist-test",
		Short: "Evaluate a trained model directory: test loss and accuracy",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := newBackend(threads)
			if err != nil {
				return err
			}
			defer b.Close()
			spec, m, err := modeldir.Load(args[0], b)
			if err != nil {
				return err
			}
			if dataDir == "" {
				dataDir = spec.Dataset.Path
			}
			d, err := openData(data, dataDir)
			if err != nil {
				return err
			}
			res, err := train.Evaluate(m, d, spec.Normalization(), batch)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{
					"model": spec.Name, "data": d.Name, "samples": res.Samples,
					"test_loss": res.Loss, "test_accuracy": 100 * res.Accuracy,
				})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s on %s (%d samples): loss %.4f, accuracy %.2f%%\n",
				spec.Name, d.Name, res.Samples, res.Loss, 100*res.Accuracy)
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "mnist-test", "dataset: mnist-test, mnist-train, cifar10-test or cifar10-train")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "directory of the dataset files (default: the spec's dataset.path; MNIST: the GoMNIST module copy)")
	cmd.Flags().IntVar(&batch, "batch", 256, "evaluation batch size")
	cmd.Flags().IntVar(&threads, "threads", 0, "cores to use (0: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}
