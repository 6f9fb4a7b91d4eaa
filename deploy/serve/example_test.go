package serve_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/maas-ml/maas/deploy/serve"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/modeldir"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/tensor"
)

// Example serves a model from its two files and asks it for the class of
// one sample.
func Example() {
	b := tensor.NewGo(1)
	defer b.Close()
	spec, _ := jobspec.Parse([]byte(`
name: digits
model:
  input: [1, 28, 28]
  layers: [{type: flatten}, {type: dense, units: 10}]
loss: softmax_cross_entropy
optimizer: {type: sgd, lr: 0.1}
dataset: {kind: mnist}
batch_size: 8
epochs: 1
`))
	m, _ := nn.BuildInference(spec.Model, b)
	m.Init(1)
	weights, specYAML, _ := modeldir.Encode(spec, m, nil)

	cfg := serve.DefaultConfig()
	cfg.Backend = b
	s, err := serve.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Shutdown(context.Background())
	if err := s.Load("", 1, specYAML, weights); err != nil {
		fmt.Println(err)
		return
	}
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()

	body := `{"inputs":[{"name":"input","shape":[1,784],"datatype":"FP32","data":[` +
		strings.TrimSuffix(strings.Repeat("0,", 784), ",") + `]}],"outputs":[{"name":"class"}]}`
	resp, err := http.Post(hs.URL+"/v2/models/digits/infer", "application/json", strings.NewReader(body))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var ir serve.InferResponse
	json.Unmarshal(raw, &ir)
	fmt.Println(resp.StatusCode, ir.ModelName, ir.ModelVersion, ir.Outputs[0].Name, ir.Outputs[0].Shape, ir.Outputs[0].Datatype)
	// Output: 200 digits 1 class [1] INT64
}
