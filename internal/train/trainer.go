package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/tensor"
)

// ErrDiverged is returned when the loss stops being finite.
var ErrDiverged = errors.New("train: loss is not finite")

// Trainer trains one model on one dataset in this process.
type Trainer struct {
	Spec  *jobspec.Spec
	Model *nn.Model
	Opt   nn.Optimizer
	Loss  *nn.SoftmaxCrossEntropy

	data   Source
	labels int // targets per sample
	perm   []int
	x      []float32 // the batch being trained on (B, sample...)
	y      []int32   // its targets (B·labels)
	step   int       // steps taken over the whole run

	dev      Device // runs the steps when set (see UseDevice)
	devAhead bool   // dev's parameters are newer than Model.Params
}

// Device runs whole training steps on an accelerator that keeps the model,
// its gradients and the optimizer state in its own memory (gputrain's
// Trainer): the batch goes in, the loss comes out, and the parameters come
// back only when asked for.
type Device interface {
	// SetParams copies θ to the device.
	SetParams(params []float32) error
	// Params copies θ from the device.
	Params(dst []float32) error
	// Step computes the loss, the rows classified right and the gradients
	// of a batch of n samples.
	Step(x []float32, y []int32, n int) (loss float32, correct int, err error)
	// Update applies the optimizer of the spec (clipping as the spec says)
	// to the last Step's gradients at learning rate lr.
	Update(lr float64) error
}

// UseDevice makes d run the steps from now on, starting from the model's
// current parameters; SyncParams brings them back into Model.Params (Run
// does before each OnEpoch and at its end). d's optimizer starts afresh.
func (t *Trainer) UseDevice(d Device) error {
	if err := d.SetParams(t.Model.Params); err != nil {
		return err
	}
	t.dev, t.devAhead = d, false
	return nil
}

// SyncParams copies the device's parameters into Model.Params when steps
// ran on a device since the last copy.
func (t *Trainer) SyncParams() error {
	if t.dev == nil || !t.devAhead {
		return nil
	}
	if err := t.dev.Params(t.Model.Params); err != nil {
		return err
	}
	t.Model.WeightsChanged()
	t.devAhead = false
	return nil
}

// New builds the model of spec on backend b, initialised from the spec's
// seed, for training on an image dataset (normalised as the spec says).
func New(spec *jobspec.Spec, b tensor.Backend, data *dataset.Dataset) (*Trainer, error) {
	return NewFromSource(spec, b, Images{D: data, Norm: spec.Normalization()})
}

// checkFit reports a model whose input or output does not fit the data:
// the input must hold a sample, and the output must be one logit vector
// per target (per sample, or per step for text).
func checkFit(m *nn.Model, data Source) error {
	if data.SampleSize() != tensor.NumElements(m.InShape()) {
		return fmt.Errorf("train: %s samples hold %d values, the model takes %v", data.Name(), data.SampleSize(), m.InShape())
	}
	out, labels := m.OutShape(), data.LabelsPerSample()
	if labels == 1 && len(out) == 1 || labels > 1 && len(out) == 2 && out[0] == labels {
		return nil
	}
	return fmt.Errorf("train: the model outputs %v per sample; %s has %d target(s) per sample, so it needs %s", out, data.Name(), labels,
		map[bool]string{true: "one vector of class logits", false: fmt.Sprintf("(%d, classes) logits", labels)}[labels == 1])
}

// NewFromSource is New for any Source.
func NewFromSource(spec *jobspec.Spec, b tensor.Backend, data Source) (*Trainer, error) {
	m, err := nn.Build(spec.Model, b)
	if err != nil {
		return nil, err
	}
	if err := checkFit(m, data); err != nil {
		return nil, err
	}
	m.Init(spec.Seed)
	opt, err := nn.NewOptimizer(spec.Optimizer, len(m.Params))
	if err != nil {
		return nil, err
	}
	out := m.OutShape()
	labels := data.LabelsPerSample()
	return &Trainer{
		Spec: spec, Model: m, Opt: opt, Loss: nn.NewSoftmaxCrossEntropy(b, out[len(out)-1]),
		data: data, labels: labels,
		x: make([]float32, spec.BatchSize*data.SampleSize()),
		y: make([]int32, spec.BatchSize*labels),
	}, nil
}

// StepsPerEpoch is ⌈N / B⌉: the last batch of an epoch may be short.
func (t *Trainer) StepsPerEpoch() int {
	return (t.data.Len() + t.Spec.BatchSize - 1) / t.Spec.BatchSize
}

// Order returns the sample order of an epoch: a permutation drawn from
// (seed, epoch), or file order when the spec turns shuffling off. The
// slice is reused by the next call.
func (t *Trainer) Order(epoch int) []int {
	t.perm = dataset.Order(t.perm, t.data.Len(), t.Spec.ShuffleOn(), t.Spec.Seed, epoch)
	return t.perm
}

// StepResult is what one training step measured.
type StepResult struct {
	Loss    float32 // mean over the step's targets
	Correct int     // targets predicted right
	N       int     // samples
	Targets int     // targets (N × targets per sample)
	LR      float64
}

// Step trains on the samples idx: next batch → forward → loss → zero grad →
// backward → clip → optimizer update, at learning rate lr. It allocates
// nothing.
func (t *Trainer) Step(idx []int, lr float64) (StepResult, error) {
	n := len(idx)
	rows := n * t.labels // one logit vector per target
	if err := t.data.Batch(idx, t.x, t.y); err != nil {
		return StepResult{}, err
	}
	if t.dev != nil {
		return t.deviceStep(n, rows, lr)
	}
	loss, correct := Gradient(t.Model, t.Loss, t.x[:n*t.data.SampleSize()], t.y[:rows], n)
	if c := t.Spec.Optimizer.ClipNorm; c > 0 {
		nn.ClipGradNorm(t.Model.Grads, c)
	}
	t.Opt.Step(t.Model.Params, t.Model.Grads, lr)
	t.step++
	if math.IsNaN(float64(loss)) || math.IsInf(float64(loss), 0) {
		return StepResult{Loss: loss, N: n, Targets: rows}, fmt.Errorf("%w at step %d (loss %g); lower optimizer.lr or set optimizer.clip_norm", ErrDiverged, t.step, loss)
	}
	return StepResult{Loss: loss, Correct: correct, N: n, Targets: rows, LR: lr}, nil
}

// Gradient computes the loss of a batch of n samples x with targets y (one
// or more per sample) and leaves the gradient of its mean in m.Grads:
// forward → loss → zero grad → backward. It is the step's computation
// wherever it runs, here and on a cluster worker; it returns the mean loss
// and the targets predicted right.
func Gradient(m *nn.Model, loss *nn.SoftmaxCrossEntropy, x []float32, y []int32, n int) (float32, int) {
	l := loss.Forward(m.Forward(x, n, true), y, len(y))
	m.ZeroGrad()
	m.Backward(loss.Backward(), n)
	return l, loss.Correct()
}

// deviceStep is Step on the device: the same batch, loss, update and
// divergence check.
func (t *Trainer) deviceStep(n, rows int, lr float64) (StepResult, error) {
	loss, correct, err := t.dev.Step(t.x[:n*t.data.SampleSize()], t.y[:rows], n)
	if err != nil {
		return StepResult{}, err
	}
	if err := t.dev.Update(lr); err != nil {
		return StepResult{}, err
	}
	t.devAhead = true
	t.step++
	if math.IsNaN(float64(loss)) || math.IsInf(float64(loss), 0) {
		return StepResult{Loss: loss, N: n, Targets: rows}, fmt.Errorf("%w at step %d (loss %g); lower optimizer.lr or set optimizer.clip_norm", ErrDiverged, t.step, loss)
	}
	return StepResult{Loss: loss, Correct: correct, N: n, Targets: rows, LR: lr}, nil
}

// Progress reports training progress after each step.
type Progress struct {
	Epoch, Epochs int // 1-based epoch
	Step          int // step within the epoch, 1-based
	StepsPerEpoch int
	GlobalStep    int
	TotalSteps    int
	Loss          float64 // running mean over the epoch so far
	Accuracy      float64 // running training accuracy over the epoch so far, in [0, 1]
	SamplesPerSec float64
	LR            float64
}

// Options bound a run.
type Options struct {
	// Epochs overrides the spec's epoch count when positive.
	Epochs int
	// MaxSteps stops after this many steps in all when positive.
	MaxSteps int
	// OnStep, when set, is called after every step.
	OnStep func(Progress)
	// OnEpoch, when set, is called after every complete epoch.
	OnEpoch func(epoch int, p Progress)
}

// Result summarises a run.
type Result struct {
	Epochs   int // epochs completed (a partial last one counts when MaxSteps stopped it)
	Steps    int
	Loss     float64 // mean training loss of the last epoch
	Accuracy float64
	Duration time.Duration
}

// Run trains for the spec's epochs (or opts.Epochs), following the
// schedule, until done, ctx is cancelled or MaxSteps is reached.
func (t *Trainer) Run(ctx context.Context, opts Options) (Result, error) {
	epochs := t.Spec.Epochs
	if opts.Epochs > 0 {
		epochs = opts.Epochs
	}
	spe := t.StepsPerEpoch()
	total := epochs * spe
	if opts.MaxSteps > 0 {
		total = min(total, opts.MaxSteps)
	}
	start := time.Now()
	var res Result
	samples := 0
	for epoch := 0; epoch < epochs && t.step < total; epoch++ {
		order := t.Order(epoch)
		var lossSum float64
		var correct, seen int
		p := Progress{Epoch: epoch + 1, Epochs: epochs, StepsPerEpoch: spe, TotalSteps: total}
		for s := 0; s < spe && t.step < total; s++ {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			lo, hi := s*t.Spec.BatchSize, min((s+1)*t.Spec.BatchSize, t.data.Len())
			lr := t.Spec.Schedule.LR(t.Spec.Optimizer.LR, t.step, spe, epochs*spe)
			r, err := t.Step(order[lo:hi], lr)
			if err != nil {
				return res, err
			}
			lossSum += float64(r.Loss) * float64(r.Targets)
			correct += r.Correct
			seen += r.Targets
			samples += r.N
			p.Step, p.GlobalStep, p.LR = s+1, t.step, lr
			p.Loss, p.Accuracy = lossSum/float64(seen), float64(correct)/float64(seen)
			p.SamplesPerSec = float64(samples) / time.Since(start).Seconds()
			if opts.OnStep != nil {
				opts.OnStep(p)
			}
		}
		res.Epochs, res.Loss, res.Accuracy = epoch+1, p.Loss, p.Accuracy
		if opts.OnEpoch != nil && p.Step == spe {
			if err := t.SyncParams(); err != nil {
				return res, err
			}
			opts.OnEpoch(epoch+1, p)
		}
	}
	res.Steps, res.Duration = t.step, time.Since(start)
	return res, t.SyncParams()
}

// Metrics is a model's loss and accuracy on a dataset.
type Metrics struct {
	Loss     float64 `json:"loss"`     // mean over targets, in nats
	Accuracy float64 `json:"accuracy"` // of targets, in [0, 1]
	Samples  int     `json:"samples"`
}

// Evaluate runs the model over every sample of an image dataset in file
// order, in batches of batch, without training behaviour (no dropout).
func Evaluate(m *nn.Model, data *dataset.Dataset, norm dataset.Normalization, batch int) (Metrics, error) {
	return EvaluateSource(m, Images{D: data, Norm: norm}, batch)
}

// EvaluateSource is Evaluate for any Source.
func EvaluateSource(m *nn.Model, data Source, batch int) (Metrics, error) {
	if batch <= 0 {
		return Metrics{}, fmt.Errorf("train: evaluation batch must be positive, got %d", batch)
	}
	if err := checkFit(m, data); err != nil {
		return Metrics{}, err
	}
	out, labels := m.OutShape(), data.LabelsPerSample()
	loss := nn.NewSoftmaxCrossEntropy(m.Backend(), out[len(out)-1])
	x := make([]float32, batch*data.SampleSize())
	y := make([]int32, batch*labels)
	idx := make([]int, batch)
	var sum float64
	correct, total := 0, 0
	for lo := 0; lo < data.Len(); lo += batch {
		n := min(batch, data.Len()-lo)
		for i := range n {
			idx[i] = lo + i
		}
		if err := data.Batch(idx[:n], x, y); err != nil {
			return Metrics{}, err
		}
		rows := n * labels
		l := loss.Forward(m.Forward(x[:n*data.SampleSize()], n, false), y[:rows], rows)
		sum += float64(l) * float64(rows)
		correct += loss.Correct()
		total += rows
	}
	if total == 0 {
		return Metrics{}, fmt.Errorf("train: %s has no samples", data.Name())
	}
	return Metrics{Loss: sum / float64(total), Accuracy: float64(correct) / float64(total), Samples: data.Len()}, nil
}
