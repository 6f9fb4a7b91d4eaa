package cli

import (
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/modeldir"
	"github.com/maas-ml/maas/internal/train"
	"github.com/maas-ml/maas/internal/wire"
)

func trainCmd() *cobra.Command {
	var (
		specPath, out, initPath, evalData string
		plotPath                          string
		epochs, maxSteps, threads         int
		dev                               deviceFlags
	)
	cmd := &cobra.Command{
		Use:   "train -f JOB.yaml -o DIR",
		Short: "Train a model in this process and write DIR/model.safetensors and DIR/model.yaml",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger()
			defer log.Sync()
			spec, err := jobspec.Load(specPath)
			if err != nil {
				return err
			}
			if epochs < 0 || maxSteps < 0 {
				return fmt.Errorf("--epochs and --max-steps must not be negative")
			}
			if plotPath != "" && strings.ToLower(filepath.Ext(plotPath)) != ".png" {
				return fmt.Errorf("--plot %q: want a .png file", plotPath)
			}
			if epochs > 0 {
				spec.Epochs = epochs
			}
			if err := spec.CheckData(); err != nil {
				return fmt.Errorf("%s: %w", specPath, err)
			}
			if out == "" {
				out = filepath.Join("out", spec.Name)
			}
			b, closeBackend, err := dev.backend(threads)
			if err != nil {
				return err
			}
			defer closeBackend()
			data, evalSet, meta, err := openTraining(spec, evalData)
			if err != nil {
				return err
			}
			t, err := train.NewFromSource(spec, b, data)
			if err != nil {
				return err
			}
			if initPath != "" {
				if err := t.Model.LoadWeights(initWeightsFile(initPath)); err != nil {
					return fmt.Errorf("--init: %w", err)
				}
			}
			fields := []zap.Field{zap.String("model", spec.Name), zap.String("dataset", data.Name()),
				zap.Int("samples", data.Len()), zap.Int("params", len(t.Model.Params)),
				zap.Int("epochs", spec.Epochs), zap.Int("batch", spec.BatchSize),
				zap.String("backend", b.Name()), zap.Int("threads", b.Threads())}
			if !dev.onCPU() {
				dt, err := newDeviceTrainer(b, spec.Model, spec.BatchSize, &spec.Optimizer, log)
				if err != nil {
					return err
				}
				if dt != nil {
					defer dt.Close()
					if err := t.UseDevice(dt); err != nil {
						return err
					}
				}
				fields = append(fields, zap.String("device", describeDevice(b)), zap.Bool("device_resident", dt != nil))
			}
			log.Info("training", fields...)

			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			rep := newReporter(log, isTerminal(os.Stderr))
			var curves curveRecorder
			res, err := t.Run(ctx, train.Options{
				MaxSteps: maxSteps,
				OnStep: func(p train.Progress) {
					rep.step(p)
					curves.step(p)
				},
				OnEpoch: func(epoch int, p train.Progress) {
					rep.finish()
					fields := []zap.Field{zap.Int("epoch", epoch), zap.Float64("loss", p.Loss),
						zap.Float64("train_accuracy", p.Accuracy), zap.Float64("samples_per_sec", p.SamplesPerSec)}
					var eval *api.EvalMetrics
					if evalSet != nil {
						m, err := train.EvaluateSource(t.Model, evalSet, 256)
						if err == nil {
							eval = &api.EvalMetrics{Set: evalSet.Name(), Loss: m.Loss, Accuracy: m.Accuracy}
							fields = append(fields, zap.String("eval", evalSet.Name()), zap.Float64("eval_loss", m.Loss), zap.Float64("eval_accuracy", m.Accuracy))
							if evalSet.LabelsPerSample() > 1 { // text: bits per character
								fields = append(fields, zap.Float64("eval_bits_per_char", m.Loss/math.Ln2))
							}
						}
					}
					curves.epoch(p, eval)
					log.Info("epoch done", fields...)
				},
			})
			rep.finish()
			if err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("interrupted after %d steps; nothing written", res.Steps)
				}
				return err
			}
			meta["steps"], meta["epochs"] = strconv.Itoa(res.Steps), strconv.Itoa(res.Epochs)
			if err := modeldir.Save(out, spec, t.Model, meta); err != nil {
				return err
			}
			log.Info("model written", zap.String("dir", out), zap.Int("steps", res.Steps),
				zap.Duration("took", res.Duration.Round(time.Second)))
			if plotPath != "" {
				if err := plotJobs([]jobCurves{{spec.Name, curves.m}}, plotPath); err != nil {
					return fmt.Errorf("--plot: %w", err)
				}
				log.Info("curves drawn", zap.String("file", plotPath))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&specPath, "file", "f", "", "job spec (YAML)")
	cmd.Flags().StringVarP(&out, "out", "o", "", "model directory to write (default out/NAME)")
	cmd.Flags().IntVar(&epochs, "epochs", 0, "train this many epochs instead of the spec's")
	cmd.Flags().IntVar(&maxSteps, "max-steps", 0, "stop after this many steps in all")
	cmd.Flags().StringVar(&initPath, "init", "", "start from these weights (safetensors, or a model directory) instead of the seed's initialisation")
	cmd.Flags().IntVar(&threads, "threads", 0, "cores to use (0: all)")
	dev.add(cmd.Flags())
	cmd.Flags().StringVar(&evalData, "eval", "", "evaluate on this dataset after each epoch (e.g. mnist-test)")
	cmd.Flags().StringVar(&plotPath, "plot", "", "draw the training curves (loss, accuracy, samples/s; --eval's at each epoch's end) into this PNG")
	cmd.MarkFlagRequired("file")
	return cmd
}

// openTraining opens the training data of spec and, with evalData or for
// text (its held-out tail), the data evaluated after each epoch. meta is
// what the model file must carry (a text model's vocabulary).
func openTraining(spec *jobspec.Spec, evalData string) (data, eval train.Source, meta map[string]string, err error) {
	data, eval, meta, err = train.Open(spec)
	if err != nil || spec.Dataset.Kind == "text" || evalData == "" {
		return data, eval, meta, err
	}
	e, err := openData(evalData, spec.Dataset.Path)
	if err != nil {
		return nil, nil, nil, err
	}
	return data, train.Images{D: e, Norm: spec.Normalization()}, meta, nil
}

// curveRecorder keeps a run's curves as a cluster job's history keeps
// them: a point every wire.HistoryEvery(total) steps, the mean loss and
// accuracy since the point before, and each epoch's.
type curveRecorder struct {
	m api.JobMetrics
	// The epoch's running sums at the last point: loss × steps, accuracy
	// × steps, the step within the epoch, and when.
	loss, acc float64
	at        int
	since     time.Time
}

func (c *curveRecorder) step(p train.Progress) {
	if p.Step == 1 || c.since.IsZero() {
		c.loss, c.acc, c.at = 0, 0, 0
		if c.since.IsZero() {
			c.since = time.Now()
		}
	}
	if int64(p.GlobalStep)%wire.HistoryEvery(int64(p.TotalSteps)) != 0 && p.GlobalStep != p.TotalSteps {
		return
	}
	// The running means over the epoch are sums over its steps so far.
	loss, acc := p.Loss*float64(p.Step), p.Accuracy*float64(p.Step)
	n := float64(p.Step - c.at)
	if n <= 0 {
		return
	}
	c.m.Points = append(c.m.Points, api.MetricPoint{Step: int64(p.GlobalStep), Epoch: int64(p.Epoch - 1), Time: time.Now(),
		Loss: (loss - c.loss) / n, Accuracy: (acc - c.acc) / n, SamplesPerSec: p.SamplesPerSec, LR: p.LR})
	c.loss, c.acc, c.at = loss, acc, p.Step
}

func (c *curveRecorder) epoch(p train.Progress, eval *api.EvalMetrics) {
	c.m.Epochs = append(c.m.Epochs, api.EpochMetrics{Epoch: int64(p.Epoch - 1), Step: int64(p.GlobalStep), Time: time.Now(),
		TrainLoss: p.Loss, TrainAccuracy: p.Accuracy, Eval: eval})
}

// reporter shows progress: a bar on a terminal, a log line every few
// seconds elsewhere.
type reporter struct {
	log      *zap.Logger
	tty      bool
	bar      *progressbar.ProgressBar
	epoch    int
	lastLine time.Time
}

func newReporter(log *zap.Logger, tty bool) *reporter {
	return &reporter{log: log, tty: tty, lastLine: time.Now()}
}

func (r *reporter) step(p train.Progress) {
	desc := fmt.Sprintf("epoch %d/%d  loss %.4f  acc %.2f%%  %.0f samples/s", p.Epoch, p.Epochs, p.Loss, 100*p.Accuracy, p.SamplesPerSec)
	if !r.tty {
		if time.Since(r.lastLine) >= 10*time.Second {
			r.lastLine = time.Now()
			r.log.Info("progress", zap.Int("epoch", p.Epoch), zap.Int("step", p.Step), zap.Int("of", p.StepsPerEpoch),
				zap.Float64("loss", p.Loss), zap.Float64("accuracy", p.Accuracy), zap.Float64("samples_per_sec", p.SamplesPerSec),
				zap.Float64("lr", p.LR))
		}
		return
	}
	if r.bar == nil || r.epoch != p.Epoch {
		r.finish()
		r.epoch = p.Epoch
		steps := p.StepsPerEpoch
		if left := p.TotalSteps - (p.GlobalStep - p.Step); left < steps {
			steps = left
		}
		r.bar = progressbar.NewOptions(steps,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetWidth(24),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish())
	}
	r.bar.Describe(desc)
	r.bar.Set(p.Step)
}

func (r *reporter) finish() {
	if r.bar != nil {
		r.bar.Finish()
		r.bar = nil
	}
}
