package serve

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/modeldir"
	"github.com/maas-ml/maas/nn"
)

// TestSequenceModel serves a row-by-row MNIST LSTM, whose input reshapes a
// sample to (28, 28): the metadata, the shapes accepted and raw pixels all
// follow the model's input shape.
func TestSequenceModel(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	spec, err := jobspec.Parse([]byte(`
name: rows
model:
  input: [28, 28]
  layers:
    - {type: lstm, units: 8}
    - {type: dense, units: 10}
loss: softmax_cross_entropy
optimizer: {type: adam, lr: 0.002}
dataset:
  kind: mnist
  normalize: {mean: [0.1307], std: [0.3081]}
batch_size: 8
epochs: 1
serving: {max_batch_size: 4}
`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := nn.BuildInference(spec.Model, ts.be)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(1)
	weights, specYAML, err := modeldir.Encode(spec, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Load("", 1, specYAML, weights); err != nil {
		t.Fatal(err)
	}
	code, b := ts.do(t, http.MethodGet, "/v2/models/rows", "")
	var meta ModelMetadata
	decodeJSON(t, b, &meta)
	if code != http.StatusOK || !reflect.DeepEqual(meta.Inputs[0].Shape, []int{-1, 28, 28}) {
		t.Errorf("metadata: %d %s", code, b)
	}
	raw := make([]float32, 2*784)
	x := make([]float32, 2*784)
	for i := range raw {
		raw[i] = float32(i % 256)
		x[i] = (raw[i]/255 - 0.1307) / 0.3081
	}
	want := forward(m, x, 2)
	for _, shape := range [][]int{{2, 28, 28}, {2, 784}} {
		resp := ts.infer(t, "/v2/models/rows/infer", inferBody(shape, raw, map[string]any{"raw_pixels": true}))
		near(t, "logits", output(t, resp, "logits"), want)
	}
	code, b = ts.do(t, http.MethodPost, "/v2/models/rows/infer", inferBody([]int{2, 1, 28, 28}, raw, nil))
	if code != http.StatusBadRequest || !strings.Contains(string(b), "expected [N, 28, 28] or [N, 784]") {
		t.Errorf("shape [2, 1, 28, 28]: %d %s", code, b)
	}
}
