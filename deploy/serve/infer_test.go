package serve

import (
	"context"
	"encoding/json"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/modeldir"
	"github.com/maas-ml/maas/internal/train"
)

// tol is how far a served value may be from the direct forward pass: the
// same kernels run on other batch compositions (GEMM blocking differs).
const tol = 1e-5

func near(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i] - want[i])); d > tol || math.IsNaN(d) {
			t.Fatalf("%s[%d] = %v, want %v (|Δ| %.3g > %g)", what, i, got[i], want[i], d, tol)
		}
	}
}

// TestInferMatchesForward serves a model and compares its logits with a
// direct forward pass on the same inputs, sent flat, nested and as
// (N, C·H·W).
func TestInferMatchesForward(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	a := newArtifact(t, ts.be, 5, nil)
	if err := ts.LoadDir(saveArtifact(t, a), 1); err != nil {
		t.Fatal(err)
	}
	const n = 3
	x := randomInput(n, 9)
	want := forward(a.model, x, n)

	flat := ts.infer(t, "/v2/models/tiny/infer", inferBody([]int{n, 1, 28, 28}, x, nil))
	near(t, "flat logits", output(t, flat, "logits"), want)

	nested := make([][][][]float32, n)
	for i := range nested {
		nested[i] = [][][]float32{make([][]float32, 28)}
		for h := range 28 {
			nested[i][0][h] = x[i*784+h*28 : i*784+(h+1)*28]
		}
	}
	data, _ := json.Marshal(nested)
	req := `{"inputs":[{"name":"input","shape":[3,1,28,28],"datatype":"FP32","data":` + string(data) + `}]}`
	nestedResp := ts.infer(t, "/v2/models/tiny/infer", req)
	if string(nestedResp.Outputs[0].Data) != string(flat.Outputs[0].Data) {
		t.Errorf("nested input gave other logits than the same input flat")
	}

	rows := make([][]float32, n)
	for i := range rows {
		rows[i] = x[i*784 : (i+1)*784]
	}
	data, _ = json.Marshal(rows)
	req = `{"inputs":[{"name":"input","shape":[3,784],"datatype":"FP32","data":` + string(data) + `}]}`
	near(t, "(N, 784) logits", output(t, ts.infer(t, "/v2/models/tiny/infer", req), "logits"), want)

	// One sample at a time gives the same rows.
	for i := range n {
		one := ts.infer(t, "/v2/models/tiny/infer", inferBody([]int{1, 784}, x[i*784:(i+1)*784], nil))
		near(t, "single-sample logits", output(t, one, "logits"), want[i*10:(i+1)*10])
	}
}

// TestServedEqualsEvaluate trains a model for a few steps, saves it as
// `maas train` does, serves the directory and checks that raw pixels sent
// with raw_pixels: true give what train.Evaluate (`maas eval`) computes:
// the same logits within tol and the same accuracy.
func TestServedEqualsEvaluate(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	spec, err := jobspec.Parse([]byte(tinyYAML))
	if err != nil {
		t.Fatal(err)
	}
	data := dataset.Synthetic("synthetic", 48, 1, 28, 28, 10, 3)
	tr, err := train.New(spec, ts.be, data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background(), train.Options{MaxSteps: 5}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := modeldir.Save(dir, spec, tr.Model, nil); err != nil {
		t.Fatal(err)
	}
	if err := ts.LoadDir(dir, 1); err != nil {
		t.Fatal(err)
	}
	_, m, err := modeldir.Load(dir, ts.be)
	if err != nil {
		t.Fatal(err)
	}
	eval, err := train.Evaluate(m, data, spec.Normalization(), 16)
	if err != nil {
		t.Fatal(err)
	}

	const batch = 8
	x := make([]float32, batch*784)
	y := make([]int32, batch)
	idx := make([]int, batch)
	correct := 0
	for lo := 0; lo < data.N; lo += batch {
		raw := make([]float32, batch*784)
		for i := range batch {
			idx[i] = lo + i
			for j, p := range data.Pixels[(lo+i)*784 : (lo+i+1)*784] {
				raw[i*784+j] = float32(p)
			}
		}
		if err := data.Batch(idx, spec.Normalization(), x, y); err != nil {
			t.Fatal(err)
		}
		resp := ts.infer(t, "/v2/models/tiny/infer", inferBody([]int{batch, 1, 28, 28}, raw, map[string]any{"raw_pixels": true}))
		near(t, "logits", output(t, resp, "logits"), forward(m, x, batch))
		classes, err := resp.Outputs[2].Int64s()
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range classes {
			if c == int64(y[i]) {
				correct++
			}
		}
	}
	if got := float64(correct) / float64(data.N); got != eval.Accuracy {
		t.Errorf("served accuracy %v, train.Evaluate %v", got, eval.Accuracy)
	}
}

// TestInstancesComputeAtOnce serves with two instances: two requests must
// be in their forward passes at the same time (each instance holds one
// until the other arrives), and each gets its own correct answer.
func TestInstancesComputeAtOnce(t *testing.T) {
	var inFlight atomic.Int32
	both := make(chan struct{})
	var once sync.Once
	hook := func() {
		if inFlight.Add(1) == 2 {
			once.Do(func() { close(both) })
		}
		select {
		case <-both:
		case <-time.After(10 * time.Second):
		}
	}
	ts := newTestServer(t, func(c *Config) { c.Instances, c.DisableBatching = 2, true }, hook)
	a := newArtifact(t, ts.be, 5, nil)
	if err := ts.LoadDir(saveArtifact(t, a), 1); err != nil {
		t.Fatal(err)
	}
	var xs, want [2][]float32
	for i := range 2 {
		xs[i] = randomInput(1, uint64(20+i))
		want[i] = forward(a.model, xs[i], 1)
	}
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			resp := ts.infer(t, "/v2/models/tiny/infer", inferBody([]int{1, 1, 28, 28}, xs[i], nil))
			near(t, "logits", output(t, resp, "logits"), want[i])
		})
	}
	wg.Wait()
	select {
	case <-both:
	default:
		t.Fatal("the two instances never computed at the same time")
	}
}
