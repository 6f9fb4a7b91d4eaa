package cli

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/train"
)

func benchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Measure maas on this machine (see bench/ for side-by-side comparisons)"}
	var (
		specPath                      string
		threads, steps, warmup, batch int
		dev                           deviceFlags
	)
	tr := &cobra.Command{
		Use:   "train -f JOB.yaml",
		Short: "Training throughput on synthetic data of the spec's shape; prints one JSON line",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := jobspec.Load(specPath)
			if err != nil {
				return err
			}
			if steps <= 0 || warmup < 0 {
				return fmt.Errorf("--steps must be positive and --warmup not negative")
			}
			if batch > 0 {
				spec.BatchSize = batch
			}
			b, closeBackend, err := dev.backend(threads)
			if err != nil {
				return err
			}
			defer closeBackend()
			kind, ok := jobspec.Kinds[spec.Dataset.Kind]
			if !ok {
				return fmt.Errorf("bench train measures image datasets (mnist, cifar10), not %s", spec.Dataset.Kind)
			}
			in := kind.Shape // samples as the dataset has them
			data := dataset.Synthetic("synthetic", spec.BatchSize*(steps+warmup), in[0], in[1], in[2], kind.Classes, 1)
			t, err := train.New(spec, b, data)
			if err != nil {
				return err
			}
			resident := false
			if !dev.onCPU() {
				dt, err := newDeviceTrainer(b, spec.Model, spec.BatchSize, &spec.Optimizer, zap.NewNop())
				if err != nil {
					return err
				}
				if dt != nil {
					defer dt.Close()
					if err := t.UseDevice(dt); err != nil {
						return err
					}
					resident = true
				}
			}
			order := t.Order(0)
			run := func(from, n int) (time.Duration, error) {
				start := time.Now()
				for s := from; s < from+n; s++ {
					if _, err := t.Step(order[s*spec.BatchSize:(s+1)*spec.BatchSize], spec.Optimizer.LR); err != nil {
						return 0, err
					}
				}
				return time.Since(start), nil
			}
			if _, err := run(0, warmup); err != nil {
				return err
			}
			d, err := run(warmup, steps)
			if err != nil {
				return err
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{
				"impl": "maas", "backend": b.Name(), "device": dev.device, "threads": b.Threads(), "batch": spec.BatchSize,
				"steps": steps, "spec": spec.Name, "device_resident": resident,
				"samples_per_sec": float64(steps*spec.BatchSize) / d.Seconds(),
			})
		},
	}
	tr.Flags().StringVarP(&specPath, "file", "f", "", "job spec (YAML)")
	tr.Flags().IntVar(&threads, "threads", 0, "cores to use (0: all)")
	dev.add(tr.Flags())
	tr.Flags().IntVar(&steps, "steps", 30, "timed steps")
	tr.Flags().IntVar(&warmup, "warmup", 5, "untimed steps first")
	tr.Flags().IntVar(&batch, "batch", 0, "batch size (default: the spec's)")
	tr.MarkFlagRequired("file")
	cmd.AddCommand(tr, benchScaleCmd())
	return cmd
}
