// Package jobspec reads and validates job specs: the YAML file that names a
// model, its loss, optimizer and schedule, the dataset and the training
// settings. docs/jobspec.md is the user reference.
package jobspec

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/nn"
)

// ErrInvalid is wrapped by every error about a spec that cannot run.
var ErrInvalid = errors.New("jobspec: invalid job spec")

// Spec is a job spec.
type Spec struct {
	// Name is the model's name when published and served, e.g. mnist-cnn.
	Name      string           `yaml:"name" json:"name"`
	Model     nn.ModelSpec     `yaml:"model" json:"model"`
	Loss      string           `yaml:"loss" json:"loss"`
	Optimizer nn.OptimizerSpec `yaml:"optimizer" json:"optimizer"`
	Schedule  nn.ScheduleSpec  `yaml:"schedule,omitempty" json:"schedule,omitempty"`
	Dataset   Dataset          `yaml:"dataset" json:"dataset"`
	BatchSize int              `yaml:"batch_size" json:"batch_size"`
	Epochs    int              `yaml:"epochs" json:"epochs"`
	Seed      uint64           `yaml:"seed" json:"seed"`
	// Shuffle (default true) draws a new permutation of the training set
	// each epoch from (seed, epoch); false keeps file order.
	Shuffle *bool `yaml:"shuffle,omitempty" json:"shuffle,omitempty"`
	// CheckpointEvery is how many steps apart a cluster job's parameter
	// servers store checkpoints (default 200; single-process training
	// writes only the final model).
	CheckpointEvery int `yaml:"checkpoint_every,omitempty" json:"checkpoint_every,omitempty"`
	// MaxBadSteps is how many steps with a non-finite gradient a cluster job
	// skips before it fails (default 3).
	MaxBadSteps int `yaml:"max_bad_steps,omitempty" json:"max_bad_steps,omitempty"`
	// BarrierTimeout bounds a cluster job's parameter servers' wait for a
	// step's last gradient, e.g. "30s" (default: the coordinator's, 30 s);
	// past it the missing workers leave the job, and a lost parameter
	// server's range waits this long for a standby.
	BarrierTimeout string `yaml:"barrier_timeout,omitempty" json:"barrier_timeout,omitempty"`
	// StepTimeout bounds a worker's wait for a step's new parameters and
	// its retries of a gradient push (default 60 s); it must exceed the
	// barrier timeout so that a missing worker is noticed first.
	StepTimeout string `yaml:"step_timeout,omitempty" json:"step_timeout,omitempty"`
	// Serving configures how the published model is served.
	Serving *Serving `yaml:"serving,omitempty" json:"serving,omitempty"`
	// Benchmark, when set, replaces the workers' computation by waits of
	// its length (a data-plane benchmark; see Benchmark).
	Benchmark *Benchmark `yaml:"benchmark,omitempty" json:"benchmark,omitempty"`
	// Compression, when set, sends a cluster job's gradients in fewer
	// bytes (see Compression).
	Compression *Compression `yaml:"compression,omitempty" json:"compression,omitempty"`
	// Aggregation is none (the default: every worker pushes its own
	// gradient) or host: the workers of a host push to the host's
	// aggregator, which pushes their sum, one push per host.
	Aggregation string `yaml:"aggregation,omitempty" json:"aggregation,omitempty"`
	// Overlap is backward (the default: a worker pushes each bucket of its
	// gradient as soon as backward has finished it, last layers first, and
	// starts the next forward on the first layers' parameters while the
	// others are still arriving) or none (the whole gradient pushed after
	// backward, the next step started once all of θ is in).
	Overlap string `yaml:"overlap,omitempty" json:"overlap,omitempty"`
	// BucketKB is the size in KiB of the buckets a cluster job's gradient
	// and parameters travel in (default 128): each is pushed, summed and
	// fanned out as one message.
	BucketKB int `yaml:"bucket_kb,omitempty" json:"bucket_kb,omitempty"`
}

// Serving is the model config of the serving endpoint: dynamic batching
// and the bounded queue.
type Serving struct {
	// MaxBatchSize caps a batch of requests run together (default 64).
	MaxBatchSize int `yaml:"max_batch_size,omitempty" json:"max_batch_size,omitempty"`
	// MaxQueueDelay is how long the first request of a batch may wait for
	// others, e.g. "1ms" (default 1ms; "0s" runs each request at once).
	MaxQueueDelay string `yaml:"max_queue_delay,omitempty" json:"max_queue_delay,omitempty"`
	// MaxQueue bounds the requests waiting per model version (default 1024);
	// past it requests are refused with 429.
	MaxQueue int `yaml:"max_queue,omitempty" json:"max_queue,omitempty"`
}

// Serving defaults.
const (
	DefaultMaxBatchSize  = 64
	DefaultMaxQueueDelay = time.Millisecond
	DefaultMaxQueue      = 1024
)

// ServingConfig returns the serving settings with defaults filled in.
func (s *Spec) ServingConfig() (maxBatch int, delay time.Duration, maxQueue int) {
	maxBatch, delay, maxQueue = DefaultMaxBatchSize, DefaultMaxQueueDelay, DefaultMaxQueue
	if v := s.Serving; v != nil {
		if v.MaxBatchSize > 0 {
			maxBatch = v.MaxBatchSize
		}
		if d, err := time.ParseDuration(v.MaxQueueDelay); err == nil && v.MaxQueueDelay != "" {
			delay = d
		}
		if v.MaxQueue > 0 {
			maxQueue = v.MaxQueue
		}
	}
	return maxBatch, delay, maxQueue
}

// Defaults of the cluster settings.
const (
	DefaultCheckpointEvery = 200
	DefaultMaxBadSteps     = 3
)

// DefaultStepTimeout is a worker's step bound when the spec sets none.
const DefaultStepTimeout = 60 * time.Second

// Barrier returns the barrier timeout, or def when the spec sets none.
func (s *Spec) Barrier(def time.Duration) time.Duration {
	if d, err := time.ParseDuration(s.BarrierTimeout); err == nil && d > 0 {
		return d
	}
	return def
}

// Step returns the step timeout (default DefaultStepTimeout).
func (s *Spec) Step() time.Duration {
	if d, err := time.ParseDuration(s.StepTimeout); err == nil && d > 0 {
		return d
	}
	return DefaultStepTimeout
}

// Checkpoints returns the checkpoint interval in steps.
func (s *Spec) Checkpoints() int {
	if s.CheckpointEvery > 0 {
		return s.CheckpointEvery
	}
	return DefaultCheckpointEvery
}

// BadSteps returns how many non-finite steps are skipped before failing.
func (s *Spec) BadSteps() int {
	if s.MaxBadSteps > 0 {
		return s.MaxBadSteps
	}
	return DefaultMaxBadSteps
}

// Dataset names the training data: files at a path present on every
// host, or a dataset pushed to the cluster with `maas data push`.
type Dataset struct {
	// Kind is mnist, cifar10 or text. With Name it may be left out (the
	// pushed dataset's manifest says it); given, it must match.
	Kind string `yaml:"kind,omitempty" json:"kind,omitempty"`
	// Path is the directory holding the files; empty for mnist means the
	// copy shipped in the GoMNIST Go module. For text it is one UTF-8 file.
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// Name is a dataset pushed with `maas data push NAME PATH`, which
	// cluster workers fetch from the Object Store (mutually exclusive with
	// Path).
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// SeqLen is a text sample's length in characters (its targets are the
	// next character of each).
	SeqLen int `yaml:"seq_len,omitempty" json:"seq_len,omitempty"`
	// Validation is the held-out tail of a text, as a fraction (default
	// 0.05).
	Validation *float64 `yaml:"validation,omitempty" json:"validation,omitempty"`
	// Normalize maps pixels scaled to [0, 1] to (x − mean[c]) / std[c].
	Normalize *Normalize `yaml:"normalize,omitempty" json:"normalize,omitempty"`
}

// Normalize is a per-channel mean and standard deviation.
type Normalize struct {
	Mean []float32 `yaml:"mean" json:"mean"`
	Std  []float32 `yaml:"std" json:"std"`
}

// Losses lists the losses a spec may name.
var Losses = []string{"softmax_cross_entropy"}

// Kinds lists the dataset kinds with their shapes and class counts.
var Kinds = map[string]struct {
	Shape   []int
	Classes int
	// Train is the size of the training split, which fixes the steps of
	// an epoch without reading the data.
	Train int
}{
	"mnist":   {[]int{1, 28, 28}, 10, 60000},
	"cifar10": {[]int{3, 32, 32}, 10, 50000},
}

// FieldError is an error about one field, named by its path in the spec
// ("dataset.normalize.std").
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *FieldError) Unwrap() error { return ErrInvalid }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Load reads and validates the spec at path.
func Load(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("job spec: %w", err)
	}
	s, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Parse decodes and validates a spec. Unknown fields are errors.
func Parse(data []byte) (*Spec, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var s Spec
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Marshal encodes the spec as YAML.
func (s *Spec) Marshal() ([]byte, error) { return yaml.Marshal(s) }

// ShuffleOn reports whether each epoch is shuffled (default true).
func (s *Spec) ShuffleOn() bool { return s.Shuffle == nil || *s.Shuffle }

// Normalization returns the dataset normalisation for the dataset package.
func (s *Spec) Normalization() dataset.Normalization {
	if s.Dataset.Normalize == nil {
		return dataset.Normalization{}
	}
	return dataset.Normalization{Mean: s.Dataset.Normalize.Mean, Std: s.Dataset.Normalize.Std}
}

// Validate checks every field that can be checked without reading data.
// Errors name the field and wrap ErrInvalid.
func (s *Spec) Validate() error {
	if s.Name == "" {
		return fieldErr("name", "missing; the model's name when published, e.g. mnist-cnn")
	}
	for _, r := range s.Name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fieldErr("name", "%q may only hold letters, digits, '-', '_' and '.'", s.Name)
		}
	}
	if err := s.Model.Validate(); err != nil {
		return wrapSpec(err)
	}
	if s.Loss != "softmax_cross_entropy" {
		return fieldErr("loss", "unknown loss %q; one of %s", s.Loss, strings.Join(Losses, ", "))
	}
	if err := s.Optimizer.Validate(); err != nil {
		return wrapSpec(err)
	}
	if err := s.Schedule.Validate(); err != nil {
		return wrapSpec(err)
	}
	if s.BatchSize <= 0 {
		return fieldErr("batch_size", "must be positive, got %d", s.BatchSize)
	}
	if s.Epochs <= 0 {
		return fieldErr("epochs", "must be positive, got %d", s.Epochs)
	}
	if s.CheckpointEvery < 0 {
		return fieldErr("checkpoint_every", "must not be negative, got %d", s.CheckpointEvery)
	}
	if s.MaxBadSteps < 0 {
		return fieldErr("max_bad_steps", "must not be negative, got %d", s.MaxBadSteps)
	}
	for _, f := range []struct{ name, v string }{{"barrier_timeout", s.BarrierTimeout}, {"step_timeout", s.StepTimeout}} {
		if f.v == "" {
			continue
		}
		if d, err := time.ParseDuration(f.v); err != nil || d <= 0 {
			return fieldErr(f.name, "%q is not a positive duration such as \"30s\"", f.v)
		}
	}
	if s.BarrierTimeout != "" && s.Step() <= s.Barrier(0) {
		return fieldErr("step_timeout", "%v must exceed barrier_timeout %v, so that a missing worker is noticed by the servers first", s.Step(), s.Barrier(0))
	}
	if b := s.Benchmark; b != nil {
		if err := b.validate(); err != nil {
			return err
		}
	}
	if c := s.Compression; c != nil {
		if err := c.validate(); err != nil {
			return err
		}
	}
	if !slices.Contains(Aggregations, s.Aggregation) && s.Aggregation != "" {
		return fieldErr("aggregation", "unknown aggregation %q; one of %s", s.Aggregation, strings.Join(Aggregations, ", "))
	}
	if !slices.Contains(Overlaps, s.Overlap) && s.Overlap != "" {
		return fieldErr("overlap", "unknown overlap %q; one of %s", s.Overlap, strings.Join(Overlaps, ", "))
	}
	if s.BucketKB != 0 && (s.BucketKB < MinBucketKB || s.BucketKB > MaxBucketKB) {
		return fieldErr("bucket_kb", "must be in %d..%d (KiB), got %d", MinBucketKB, MaxBucketKB, s.BucketKB)
	}
	if v := s.Serving; v != nil {
		if v.MaxBatchSize < 0 || v.MaxBatchSize > 4096 {
			return fieldErr("serving.max_batch_size", "must be in 1..4096, got %d", v.MaxBatchSize)
		}
		if v.MaxQueue < 0 {
			return fieldErr("serving.max_queue", "must not be negative, got %d", v.MaxQueue)
		}
		if v.MaxQueueDelay != "" {
			if d, err := time.ParseDuration(v.MaxQueueDelay); err != nil || d < 0 || d > time.Second {
				return fieldErr("serving.max_queue_delay", "%q: a duration from 0s to 1s, e.g. 2ms", v.MaxQueueDelay)
			}
		}
	}
	if d := s.Dataset; d.Name != "" {
		if d.Path != "" {
			return fieldErr("dataset.path", "%q and dataset.name %q are mutually exclusive: name a dataset pushed with `maas data push`, or give a path present on every host", d.Path, d.Name)
		}
		if err := dataset.ValidName(d.Name); err != nil {
			return fieldErr("dataset.name", "%v", err)
		}
		if d.Kind == "text" {
			return fieldErr("dataset.kind", "text datasets cannot be pushed; give dataset.path")
		}
		if d.Kind == "" {
			return nil // checked again when the coordinator fills in the manifest's kind
		}
	}
	if s.Dataset.Kind == "text" {
		return s.validateText()
	}
	kind, ok := Kinds[s.Dataset.Kind]
	if !ok {
		return fieldErr("dataset.kind", "unknown dataset kind %q; one of mnist, cifar10, text", s.Dataset.Kind)
	}
	if s.Dataset.Kind == "cifar10" && s.Dataset.Path == "" && s.Dataset.Name == "" {
		return fieldErr("dataset.path", "cifar10 needs the directory holding data_batch_1.bin … test_batch.bin")
	}
	// The input may reshape a sample (row-major), e.g. [28, 28] reads an
	// MNIST image as 28 time steps of 28 pixels.
	if got, want := tensorLen(s.Model.Input), tensorLen(kind.Shape); got != want {
		return fieldErr("model.input", "%v holds %d values per sample; %s samples are %v (%d values)", s.Model.Input, got, s.Dataset.Kind, kind.Shape, want)
	}
	if n := s.Dataset.Normalize; n != nil {
		if err := s.Normalization().Validate(kind.Shape[0]); err != nil {
			return fieldErr("dataset.normalize", "%v", err)
		}
		for _, v := range append(append([]float32(nil), n.Mean...), n.Std...) {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fieldErr("dataset.normalize", "values must be finite")
			}
		}
	}
	// The output layer must give one logit per class.
	if out, err := outputShape(s.Model); err == nil && (len(out) != 1 || out[0] != kind.Classes) {
		return fieldErr("model.layers", "the model outputs %v per sample; %s needs %d logits (end with dense units: %d)", out, s.Dataset.Kind, kind.Classes, kind.Classes)
	}
	return nil
}

// DefaultValidation is the held-out fraction of a text dataset.
const DefaultValidation = 0.05

// ValidationFraction returns the held-out fraction of a text dataset.
func (s *Spec) ValidationFraction() float64 {
	if v := s.Dataset.Validation; v != nil {
		return *v
	}
	return DefaultValidation
}

// validateText checks a character-level language model's spec: the model
// takes seq_len token ids and gives (seq_len, vocabulary) logits; the
// vocabulary size is checked against the text when it is read.
func (s *Spec) validateText() error {
	d := s.Dataset
	switch {
	case d.Path == "":
		return fieldErr("dataset.path", "text needs the UTF-8 file to train on")
	case d.SeqLen < 1:
		return fieldErr("dataset.seq_len", "text needs the sequence length in characters, ≥ 1, got %d", d.SeqLen)
	case d.Normalize != nil:
		return fieldErr("dataset.normalize", "does not apply to text")
	}
	if v := s.ValidationFraction(); !(v >= 0 && v < 1) {
		return fieldErr("dataset.validation", "must be in [0, 1), got %g", v)
	}
	if len(s.Model.Input) != 1 || s.Model.Input[0] != d.SeqLen {
		return fieldErr("model.input", "%v: a text model takes [%d] token ids (dataset.seq_len)", s.Model.Input, d.SeqLen)
	}
	if out, err := outputShape(s.Model); err == nil && (len(out) != 2 || out[0] != d.SeqLen) {
		return fieldErr("model.layers", "the model outputs %v per sample; a text model needs (%d, vocabulary) logits: return_sequences: true, then dense over the vocabulary", out, d.SeqLen)
	}
	return nil
}

// CheckData verifies that the dataset's files can be found, so a missing
// file is reported before training starts.
func (s *Spec) CheckData() error {
	if s.Dataset.Name != "" {
		return fieldErr("dataset.name", "%q is a dataset pushed to a cluster: only its workers read it (`maas job submit`); `maas train` reads dataset.path", s.Dataset.Name)
	}
	if s.Dataset.Kind == "text" {
		if st, err := os.Stat(s.Dataset.Path); err != nil || st.IsDir() {
			return fieldErr("dataset.path", "%q is not a readable file", s.Dataset.Path)
		}
		return nil
	}
	dir := s.Dataset.Path
	if s.Dataset.Kind == "mnist" && dir == "" {
		d, err := dataset.DefaultMNISTDir()
		if err != nil {
			return fieldErr("dataset.path", "%v", err)
		}
		dir = d
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fieldErr("dataset.path", "%q is not a readable directory", dir)
	}
	return nil
}

func wrapSpec(err error) error {
	var se *nn.SpecError
	if errors.As(err, &se) {
		return &FieldError{Field: se.Field, Msg: se.Msg}
	}
	return fmt.Errorf("%w: %v", ErrInvalid, err)
}

func tensorLen(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// outputShape returns the model's per-sample output shape.
func outputShape(m nn.ModelSpec) ([]int, error) { return nn.OutputShape(m) }
