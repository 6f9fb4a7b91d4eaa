package train

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/modeldir"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/tensor"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/maas-ml/maas/tensor.(*workerPool).work"))
}

func loadSpec(t testing.TB, path string) *jobspec.Spec {
	t.Helper()
	s, err := jobspec.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tinySpec(t testing.TB) *jobspec.Spec {
	s, err := jobspec.Parse([]byte(`
name: tiny
model:
  input: [1, 28, 28]
  layers:
    - {type: conv2d, filters: 4, kernel: 3, padding: 1}
    - {type: relu}
    - {type: maxpool2d, kernel: 4}
    - {type: flatten}
    - {type: dropout, rate: 0.1}
    - {type: dense, units: 10}
loss: softmax_cross_entropy
optimizer: {type: adam, lr: 0.01}
schedule: {type: cosine, warmup_steps: 3}
dataset: {kind: mnist}
batch_size: 16
epochs: 2
seed: 7
`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLearnsSynthetic trains on a learnable synthetic set and checks that
// the held-out accuracy rises far above chance.
func TestLearnsSynthetic(t *testing.T) {
	b := tensor.NewGo(2)
	defer b.Close()
	spec := tinySpec(t)
	data := dataset.Synthetic("train", 512, 1, 28, 28, 10, 1)
	tr, err := New(spec, b, data)
	if err != nil {
		t.Fatal(err)
	}
	before, err := Evaluate(tr.Model, data, spec.Normalization(), 64)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Run(context.Background(), Options{Epochs: 6})
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 6*32 || res.Epochs != 6 {
		t.Fatalf("ran %d steps over %d epochs, want 192 over 6", res.Steps, res.Epochs)
	}
	after, err := Evaluate(tr.Model, data, spec.Normalization(), 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("accuracy %.3f → %.3f, loss %.3f → %.3f", before.Accuracy, after.Accuracy, before.Loss, after.Loss)
	if after.Accuracy < 0.9 || after.Loss >= before.Loss {
		t.Fatalf("did not learn: accuracy %.3f → %.3f, loss %.3f → %.3f", before.Accuracy, after.Accuracy, before.Loss, after.Loss)
	}
}

// TestDeterministic: the same spec and seed give bit-identical weights.
func TestDeterministic(t *testing.T) {
	run := func() []float32 {
		b := tensor.NewGo(2)
		defer b.Close()
		tr, err := New(tinySpec(t), b, dataset.Synthetic("d", 100, 1, 28, 28, 10, 2))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Run(context.Background(), Options{MaxSteps: 9}); err != nil {
			t.Fatal(err)
		}
		return tr.Model.Params
	}
	a, b := run(), run()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("param %d differs between identical runs: %g vs %g", i, a[i], b[i])
		}
	}
}

// TestOrder: every sample once per epoch; epochs differ; shuffle: false
// keeps file order; the last batch is short.
func TestOrder(t *testing.T) {
	b := tensor.Reference
	data := dataset.Synthetic("d", 50, 1, 28, 28, 10, 2)
	tr, err := New(tinySpec(t), b, data)
	if err != nil {
		t.Fatal(err)
	}
	if tr.StepsPerEpoch() != 4 {
		t.Fatalf("steps per epoch %d, want ⌈50/16⌉ = 4", tr.StepsPerEpoch())
	}
	e0 := append([]int(nil), tr.Order(0)...)
	e1 := append([]int(nil), tr.Order(1)...)
	seen := make([]bool, 50)
	for _, i := range e0 {
		if seen[i] {
			t.Fatalf("sample %d twice in an epoch", i)
		}
		seen[i] = true
	}
	same := 0
	for i := range e0 {
		if e0[i] == e1[i] {
			same++
		}
	}
	if same > 10 {
		t.Fatalf("epochs 0 and 1 share %d of 50 positions", same)
	}
	off := false
	tr.Spec.Shuffle = &off
	for i, v := range tr.Order(3) {
		if v != i {
			t.Fatalf("shuffle off: position %d holds %d", i, v)
		}
	}
}

// TestStepAllocatesNothing checks the steady-state training step of the
// seed CNN allocates nothing.
func TestStepAllocatesNothing(t *testing.T) {
	for _, threads := range []int{1, 2} {
		b := tensor.NewGo(threads)
		spec := loadSpec(t, "../../examples/mnist-cnn.yaml")
		spec.BatchSize = 16
		tr, err := New(spec, b, dataset.Synthetic("d", 64, 1, 28, 28, 10, 3))
		if err != nil {
			t.Fatal(err)
		}
		idx := tr.Order(0)[:16]
		if _, err := tr.Step(idx, 1e-3); err != nil { // sizes the buffers
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(5, func() {
			if _, err := tr.Step(idx, 1e-3); err != nil {
				t.Fatal(err)
			}
		})
		b.Close()
		if allocs != 0 {
			t.Fatalf("threads=%d: a training step allocates %.1f times", threads, allocs)
		}
	}
}

func TestSaveLoad(t *testing.T) {
	b := tensor.NewGo(1)
	defer b.Close()
	spec := tinySpec(t)
	data := dataset.Synthetic("d", 64, 1, 28, 28, 10, 4)
	tr, err := New(spec, b, data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background(), Options{MaxSteps: 3}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "model")
	if err := modeldir.Save(dir, spec, tr.Model, map[string]string{"steps": "3"}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("model directory holds %d files, want model.safetensors and model.yaml (no temp files)", len(entries))
	}
	spec2, m2, err := modeldir.Load(dir, b)
	if err != nil {
		t.Fatal(err)
	}
	if spec2.Name != "tiny" {
		t.Fatalf("loaded spec name %q", spec2.Name)
	}
	for i := range tr.Model.Params {
		if tr.Model.Params[i] != m2.Params[i] {
			t.Fatalf("param %d changed through save/load", i)
		}
	}
	want, _ := Evaluate(tr.Model, data, spec.Normalization(), 32)
	got, _ := Evaluate(m2, data, spec2.Normalization(), 7)
	if math.Abs(want.Loss-got.Loss) > 1e-5 || want.Accuracy != got.Accuracy {
		t.Fatalf("loaded model evaluates to %+v, saved one to %+v", got, want)
	}
	// A corrupt weights file is refused with a clear error.
	if err := os.WriteFile(filepath.Join(dir, modeldir.WeightsFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := modeldir.Load(dir, b); err == nil {
		t.Fatal("loaded a corrupt weights file")
	}
}

func TestDivergenceIsReported(t *testing.T) {
	b := tensor.Reference
	spec := tinySpec(t)
	spec.Optimizer.LR = 1e30
	spec.Schedule.WarmupSteps = 0
	tr, err := New(spec, b, dataset.Synthetic("d", 64, 1, 28, 28, 10, 5))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background(), Options{}); err == nil {
		t.Fatal("a run with lr 1e30 did not report divergence")
	}
}

// BenchmarkTrainStep is one training step at batch 64 (forward, loss,
// backward, Adam) of the seed CNN on 1x28x28 and 3x32x32 inputs and of the
// row-MNIST LSTM.
func BenchmarkTrainStep(b *testing.B) {
	for _, c := range []struct{ name, spec string }{{"mnist-1x28x28", "../../examples/mnist-cnn.yaml"}, {"cifar-3x32x32", "../../examples/cifar10-cnn.yaml"}, {"mnist-lstm", "../../examples/mnist-lstm.yaml"}} {
		for _, threads := range []int{1, 2} {
			b.Run(c.name+"/threads="+string(rune('0'+threads)), func(b *testing.B) {
				be := tensor.NewGo(threads)
				defer be.Close()
				spec := loadSpec(b, c.spec)
				in := jobspec.Kinds[spec.Dataset.Kind].Shape
				tr, err := New(spec, be, dataset.Synthetic("d", 64, in[0], in[1], in[2], 10, 1))
				if err != nil {
					b.Fatal(err)
				}
				idx := tr.Order(0)
				tr.Step(idx, 1e-3)
				b.ResetTimer()
				for b.Loop() {
					tr.Step(idx, 1e-3)
				}
				b.ReportMetric(float64(64*b.N)/b.Elapsed().Seconds(), "samples/s")
			})
		}
	}
}

// TestTextSource trains a character model on a periodic text: every target
// is predictable, so the held-out accuracy must approach 1 and the loss
// fall well below log(vocabulary).
func TestTextSource(t *testing.T) {
	b := tensor.NewGo(2)
	defer b.Close()
	corpus := strings.Repeat("abcdefg hij", 60)
	tr, val, err := dataset.NewText("periodic", []byte(corpus), 12, 0.2)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := jobspec.Parse([]byte(fmt.Sprintf(`
name: tiny-lm
model:
  input: [12]
  layers:
    - {type: embedding, vocab: %d, units: 8}
    - {type: lstm, units: 32, return_sequences: true}
    - {type: dense, units: %d}
loss: softmax_cross_entropy
optimizer: {type: adam, lr: 0.02}
dataset: {kind: text, path: unused.txt, seq_len: 12}
batch_size: 8
epochs: 15
seed: 3
`, len(tr.Vocab), len(tr.Vocab))))
	if err != nil {
		t.Fatal(err)
	}
	trainer, err := NewFromSource(spec, b, Text{T: tr})
	if err != nil {
		t.Fatal(err)
	}
	before, err := EvaluateSource(trainer.Model, Text{T: val}, 16)
	if err != nil {
		t.Fatal(err)
	}
	res, err := trainer.Run(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	after, err := EvaluateSource(trainer.Model, Text{T: val}, 5)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("held-out loss %.3f → %.3f nats/char, accuracy %.3f → %.3f (%d steps)", before.Loss, after.Loss, before.Accuracy, after.Accuracy, res.Steps)
	if after.Accuracy < 0.9 || after.Loss > 0.5*before.Loss {
		t.Fatalf("did not learn the periodic text: loss %.3f → %.3f, accuracy %.3f", before.Loss, after.Loss, after.Accuracy)
	}
	// A model whose output is one vector per sample does not fit text.
	bad := *spec
	bad.Model.Layers = append([]nn.LayerSpec(nil), spec.Model.Layers...)
	bad.Model.Layers[1].ReturnSequences = false
	if _, err := NewFromSource(&bad, b, Text{T: tr}); err == nil {
		t.Fatal("a model with one output per sample was accepted for text")
	}
}

// hostDevice is a real, in-memory Device for tests: its own copy of the
// model, optimizer and loss, stepped on a CPU backend, as a GPU keeps them
// in its memory.
type hostDevice struct {
	m       *nn.Model
	opt     nn.Optimizer
	loss    *nn.SoftmaxCrossEntropy
	clip    float64
	updates int
}

var _ Device = (*hostDevice)(nil)

func newHostDevice(t *testing.T, spec *jobspec.Spec, b tensor.Backend) *hostDevice {
	m, err := nn.Build(spec.Model, b)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(spec.Seed) // the dropout generators, as the Trainer's model has them
	opt, err := nn.NewOptimizer(spec.Optimizer, len(m.Params))
	if err != nil {
		t.Fatal(err)
	}
	out := m.OutShape()
	return &hostDevice{m: m, opt: opt, loss: nn.NewSoftmaxCrossEntropy(b, out[len(out)-1]), clip: spec.Optimizer.ClipNorm}
}

func (d *hostDevice) SetParams(p []float32) error { copy(d.m.Params, p); return nil }
func (d *hostDevice) Params(p []float32) error    { copy(p, d.m.Params); return nil }

func (d *hostDevice) Step(x []float32, y []int32, n int) (float32, int, error) {
	l := d.loss.Forward(d.m.Forward(x, n, true), y, len(y))
	d.m.ZeroGrad()
	d.m.Backward(d.loss.Backward(), n)
	return l, d.loss.Correct(), nil
}

func (d *hostDevice) Update(lr float64) error {
	if d.clip > 0 {
		nn.ClipGradNorm(d.m.Grads, d.clip)
	}
	d.opt.Step(d.m.Params, d.m.Grads, lr)
	d.updates++
	return nil
}

// TestUseDevice: steps run on a Device train the model as steps on the
// backend do, and Run brings the device's parameters back before each
// OnEpoch and at its end.
func TestUseDevice(t *testing.T) {
	b := tensor.NewGo(2)
	defer b.Close()
	data := dataset.Synthetic("d", 100, 1, 28, 28, 10, 2)
	plain, err := New(tinySpec(t), b, data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Run(context.Background(), Options{MaxSteps: 9}); err != nil {
		t.Fatal(err)
	}

	spec := tinySpec(t)
	tr, err := New(spec, b, data)
	if err != nil {
		t.Fatal(err)
	}
	dev := newHostDevice(t, spec, b)
	if err := tr.UseDevice(dev); err != nil {
		t.Fatal(err)
	}
	epochs := 0
	res, err := tr.Run(context.Background(), Options{MaxSteps: 9, OnEpoch: func(int, Progress) {
		epochs++
		for i, v := range dev.m.Params {
			if tr.Model.Params[i] != v {
				t.Fatalf("OnEpoch: Model.Params[%d] = %g, the device has %g", i, tr.Model.Params[i], v)
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 9 || dev.updates != 9 || epochs != 1 {
		t.Fatalf("%d steps, %d device updates, %d epochs ended, want 9, 9 and 1", res.Steps, dev.updates, epochs)
	}
	for i, v := range plain.Model.Params {
		if tr.Model.Params[i] != v {
			t.Fatalf("param %d: %g after device steps, %g after backend steps", i, tr.Model.Params[i], v)
		}
	}
}
