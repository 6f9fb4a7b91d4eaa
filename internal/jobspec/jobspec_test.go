package jobspec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maas-ml/maas/internal/wire"
)

func TestShippedExamplesParse(t *testing.T) {
	for _, p := range []string{"../../examples/mnist-cnn.yaml", "../../examples/cifar10-cnn.yaml", "../../bench/specs/mnist-cnn-plain.yaml"} {
		s, err := Load(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if s.BatchSize != 64 || s.Optimizer.Type != "adam" || len(s.Model.Layers) != 13 {
			t.Fatalf("%s: parsed %+v", p, s)
		}
	}
	s, _ := Load("../../examples/mnist-cnn.yaml")
	if s.Name != "mnist-cnn" || !s.ShuffleOn() {
		t.Fatalf("mnist-cnn example: name %q shuffle %v", s.Name, s.ShuffleOn())
	}
}

const good = `
name: tiny
model:
  input: [1, 28, 28]
  layers:
    - {type: conv2d, filters: 4, kernel: 3, padding: 1}
    - {type: relu}
    - {type: maxpool2d, kernel: 2}
    - {type: flatten}
    - {type: dense, units: 10}
loss: softmax_cross_entropy
optimizer: {type: adam, lr: 0.001}
dataset: {kind: mnist}
batch_size: 8
epochs: 1
seed: 3
`

// TestBadSpecs checks that each broken spec is refused with an error naming
// the field at fault.
func TestBadSpecs(t *testing.T) {
	cases := []struct {
		name, from, to, field string
	}{
		{"unknown layer", "type: relu", "type: gelu", "model.layers[1].type"},
		{"kernel too big", "kernel: 2}", "kernel: 40}", "model.layers[2].kernel"},
		{"negative batch", "batch_size: 8", "batch_size: -8", "batch_size"},
		{"zero epochs", "epochs: 1", "epochs: 0", "epochs"},
		{"unknown optimizer", "type: adam", "type: lamb", "optimizer.type"},
		{"negative lr", "lr: 0.001", "lr: -1", "optimizer.lr"},
		{"wrong class count", "units: 10", "units: 7", "model.layers"},
		{"dense on images", "    - {type: flatten}\n", "", "model.layers[3]"},
		{"input mismatch", "input: [1, 28, 28]", "input: [3, 28, 28]", "model.input"},
		{"input of another size", "input: [1, 28, 28]", "input: [1, 28, 27]", "model.input"},
		{"unknown dataset", "kind: mnist", "kind: imagenet", "dataset.kind"},
		{"missing name", "name: tiny", "name: ''", "name"},
		{"bad loss", "loss: softmax_cross_entropy", "loss: mse", "loss"},
		{"unknown field", "seed: 3", "seed: 3\nbatchsize: 3", "batchsize"},
		{"negative padding", "padding: 1}", "padding: -1}", "model.layers[0].padding"},
		{"bad schedule", "seed: 3", "seed: 3\nschedule: {type: linear}", "schedule.type"},
		{"bad normalisation", "dataset: {kind: mnist}", "dataset: {kind: mnist, normalize: {mean: [0.1], std: [0]}}", "dataset.normalize"},
		{"barrier not a duration", "seed: 3", "seed: 3\nbarrier_timeout: soon", "barrier_timeout"},
		{"negative step timeout", "seed: 3", "seed: 3\nstep_timeout: -5s", "step_timeout"},
		{"step within the barrier", "seed: 3", "seed: 3\nbarrier_timeout: 90s", "step_timeout"},
		{"synthetic compute missing", "seed: 3", "seed: 3\nbenchmark: {dilation: 4}", "benchmark.synthetic_compute"},
		{"synthetic compute not a duration", "seed: 3", "seed: 3\nbenchmark: {synthetic_compute: fast}", "benchmark.synthetic_compute"},
		{"dilation below 1", "seed: 3", "seed: 3\nbenchmark: {synthetic_compute: 1ms, dilation: 0.5}", "benchmark.dilation"},
		{"unknown compression", "seed: 3", "seed: 3\ncompression: {type: zip}", "compression.type"},
		{"unknown aggregation", "seed: 3", "seed: 3\naggregation: rack", "aggregation"},
		{"ratio without topk", "seed: 3", "seed: 3\ncompression: {type: int8, ratio: 0.1}", "compression.ratio"},
		{"topk ratio above 1", "seed: 3", "seed: 3\ncompression: {type: topk, ratio: 2}", "compression.ratio"},
		{"unknown overlap", "seed: 3", "seed: 3\noverlap: forward", "overlap"},
		{"bucket too large", "seed: 3", "seed: 3\nbucket_kb: 2048", "bucket_kb"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := strings.Replace(good, c.from, c.to, 1)
			if src == good {
				t.Fatalf("case did not change the spec")
			}
			_, err := Parse([]byte(src))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("error %q does not name %s", err, c.field)
			}
		})
	}
	if _, err := Parse([]byte(good)); err != nil {
		t.Fatalf("the good spec: %v", err)
	}
}

func TestMissingFiles(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope.yaml")); err == nil || !os.IsNotExist(errors.Unwrap(err)) && !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing spec file: %v", err)
	}
	s, err := Parse([]byte(strings.Replace(good, "dataset: {kind: mnist}", "dataset: {kind: mnist, path: /nonexistent/mnist}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckData(); err == nil || !strings.Contains(err.Error(), "dataset.path") {
		t.Fatalf("missing data directory: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	s, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	y, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Parse(y)
	if err != nil {
		t.Fatalf("re-parsing the marshalled spec: %v\n%s", err, y)
	}
	if s2.Name != s.Name || len(s2.Model.Layers) != len(s.Model.Layers) || s2.Model.Layers[0].Padding != 1 || s2.Seed != 3 {
		t.Fatalf("round trip changed the spec:\n%s", y)
	}
}

func TestFieldNotForType(t *testing.T) {
	src := strings.Replace(good, "{type: maxpool2d, kernel: 2}", "{type: maxpool2d, kernel: 2, padding: 1}", 1)
	if _, err := Parse([]byte(src)); err == nil || !strings.Contains(err.Error(), "model.layers[2].padding") {
		t.Fatalf("padding on a max-pool: %v", err)
	}
}

const textSpec = `
name: lm
model:
  input: [16]
  layers:
    - {type: embedding, vocab: 30, units: 8}
    - {type: lstm, units: 16, return_sequences: true}
    - {type: dense, units: 30}
loss: softmax_cross_entropy
optimizer: {type: adam, lr: 0.001}
dataset: {kind: text, path: corpus.txt, seq_len: 16}
batch_size: 8
epochs: 1
`

func TestTextSpecs(t *testing.T) {
	s, err := Parse([]byte(textSpec))
	if err != nil {
		t.Fatal(err)
	}
	if s.ValidationFraction() != DefaultValidation {
		t.Fatalf("validation fraction %g", s.ValidationFraction())
	}
	for field, src := range map[string]string{
		"dataset.seq_len":    strings.Replace(textSpec, "seq_len: 16", "seq_len: 0", 1),
		"dataset.path":       strings.Replace(textSpec, "path: corpus.txt, ", "", 1),
		"model.input":        strings.Replace(textSpec, "seq_len: 16", "seq_len: 12", 1),
		"model.layers":       strings.Replace(textSpec, "return_sequences: true", "return_sequences: false", 1),
		"dataset.validation": strings.Replace(textSpec, "seq_len: 16}", "seq_len: 16, validation: 1.5}", 1),
	} {
		if _, err := Parse([]byte(src)); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v", field, err)
		}
	}
	if err := s.CheckData(); err == nil || !strings.Contains(err.Error(), "dataset.path") {
		t.Fatalf("a missing corpus: %v", err)
	}
}

// TestEveryExampleParses keeps the shipped examples valid.
func TestEveryExampleParses(t *testing.T) {
	paths, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(paths) < 5 {
		t.Fatalf("examples: %v %v", paths, err)
	}
	for _, p := range paths {
		if _, err := Load(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// TestTimeouts: a job's own bounds, or the defaults.
func TestTimeouts(t *testing.T) {
	s, err := Parse([]byte(good + "barrier_timeout: 5s\nstep_timeout: 20s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Barrier(30*time.Second) != 5*time.Second || s.Step() != 20*time.Second {
		t.Fatalf("barrier %v step %v", s.Barrier(30*time.Second), s.Step())
	}
	d, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if d.Barrier(30*time.Second) != 30*time.Second || d.Step() != DefaultStepTimeout {
		t.Fatalf("defaults: barrier %v step %v", d.Barrier(30*time.Second), d.Step())
	}
}

// TestSyntheticCompute: a benchmark job's wait for one sample is
// synthetic_compute × dilation (dilation 1 when left out); a job without
// the section computes for real.
func TestSyntheticCompute(t *testing.T) {
	for _, c := range []struct {
		extra string
		want  time.Duration
	}{
		{"", 0},
		{"benchmark: {synthetic_compute: 700us}\n", 700 * time.Microsecond},
		{"benchmark: {synthetic_compute: 700us, dilation: 10}\n", 7 * time.Millisecond},
	} {
		s, err := Parse([]byte(good + c.extra))
		if err != nil {
			t.Fatalf("%q: %v", c.extra, err)
		}
		if got := s.SyntheticCompute(); got != c.want {
			t.Errorf("%q: SyntheticCompute %v, want %v", c.extra, got, c.want)
		}
	}
}

// TestCompressionEncoding: the compression type names the pushes' wire
// encoding and that of θ's changes (topk's: a bit a value); none (or no
// section) is float32, θ whole.
func TestCompressionEncoding(t *testing.T) {
	for extra, want := range map[string][2]wire.Encoding{
		"": {wire.EncFloat32, ""}, "compression: {type: none}\n": {wire.EncFloat32, ""},
		"compression: {type: fp16}\n": {wire.EncFloat16, wire.EncFloat16}, "compression: {type: bf16}\n": {wire.EncBFloat16, wire.EncBFloat16},
		"compression: {type: int8}\n": {wire.EncInt8, wire.EncInt8}, "compression: {type: topk, ratio: 0.02}\n": {wire.EncTopK, wire.EncSign},
	} {
		s, err := Parse([]byte(good + extra))
		if err != nil {
			t.Fatalf("%q: %v", extra, err)
		}
		if got := s.Encoding(); got != want[0] {
			t.Errorf("%q: encoding %q, want %q", extra, got, want[0])
		}
		if got := s.ParamEncoding(); got != want[1] {
			t.Errorf("%q: θ's encoding %q, want %q", extra, got, want[1])
		}
	}
}

// TestNamedDataset: a spec names a pushed dataset instead of a path; the
// kind may be left to the manifest, and name and path together are
// refused naming the field.
func TestNamedDataset(t *testing.T) {
	named := strings.Replace(good, "dataset: {kind: mnist}", "dataset: {name: mnist-full}", 1)
	s, err := Parse([]byte(named))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckData(); err == nil || !strings.Contains(err.Error(), "dataset.name") || !strings.Contains(err.Error(), "maas job submit") {
		t.Errorf("CheckData of a named dataset: %v", err)
	}
	s.Dataset.Kind = "mnist" // as the coordinator fills it in from the manifest
	if err := s.Validate(); err != nil {
		t.Fatalf("with the manifest's kind: %v", err)
	}
	s.Dataset.Kind = "cifar10"
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "model.input") {
		t.Fatalf("a cifar10 dataset for an MNIST model: %v", err)
	}
	y, _ := s.Marshal()
	if !strings.Contains(string(y), "name: mnist-full") || strings.Contains(string(y), "path:") {
		t.Errorf("marshalled dataset:\n%s", y)
	}
	for field, ds := range map[string]string{
		"dataset.path": "{name: mnist-full, path: /data/mnist}",
		"dataset.name": "{name: 'a/b'}",
		"dataset.kind": "{name: corpus, kind: text}",
	} {
		_, err := Parse([]byte(strings.Replace(good, "dataset: {kind: mnist}", "dataset: "+ds, 1)))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("dataset %s: %v; want a %s error", ds, err, field)
		}
	}
}
