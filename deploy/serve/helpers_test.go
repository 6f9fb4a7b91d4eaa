package serve

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/modeldir"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/tensor"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/maas-ml/maas/tensor.(*workerPool).work"),
		// nats.go's JetStream context starts this for asynchronous replies
		// (the Object Store uses them) and it outlives the connection.
		goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"))
}

// tinyYAML is testdata/specs/tiny-served.yaml (a small MNIST-shaped model
// that runs fast under -race) with serving settings that keep batches
// small.
var tinyYAML = string(readSpec("../../testdata/specs/tiny-served.yaml")) +
	"serving: {max_batch_size: 8, max_queue_delay: 2ms, max_queue: 64}\n"

// readSpec reads a shared test spec; a missing file is a broken checkout.
func readSpec(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return b
}

// artifact is one model version's files and the model they hold.
type artifact struct {
	spec     *jobspec.Spec
	model    *nn.Model
	specYAML []byte
	weights  []byte
}

// newArtifact builds the tiny model (with settings changed by edit, if
// given) initialised from seed on b.
func newArtifact(t testing.TB, b tensor.Backend, seed uint64, edit func(*jobspec.Spec)) artifact {
	t.Helper()
	spec, err := jobspec.Parse([]byte(tinyYAML))
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(spec)
	}
	m, err := nn.BuildInference(spec.Model, b)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(seed)
	weights, specYAML, err := modeldir.Encode(spec, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	return artifact{spec: spec, model: m, specYAML: specYAML, weights: weights}
}

// saveArtifact writes a model directory and returns it.
func saveArtifact(t testing.TB, a artifact) string {
	t.Helper()
	dir := t.TempDir()
	if err := modeldir.Save(dir, a.spec, a.model, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

// testServer is a Server behind an httptest server, with its own metrics
// registry.
type testServer struct {
	*Server
	url    string
	reg    *prometheus.Registry
	client *http.Client
	be     *tensor.GoBackend
}

// newTestServer starts a server; edit changes its config first and hook,
// if set, runs before every forward pass.
func newTestServer(t testing.TB, edit func(*Config), hook func()) *testServer {
	t.Helper()
	be := tensor.NewGo(2)
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.Logger, cfg.Registerer, cfg.Backend = zaptest.NewLogger(t), reg, be
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.beforeForward = hook
	hs := httptest.NewServer(s.Handler())
	ts := &testServer{Server: s, url: hs.URL, reg: reg, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}, be: be}
	t.Cleanup(func() {
		ts.client.CloseIdleConnections()
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		be.Close()
	})
	return ts
}

// do sends a request and returns the status and body.
func (ts *testServer) do(t testing.TB, method, path, body string, header ...string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	resp, b := ts.send(t, method, path, r, header...)
	return resp.StatusCode, b
}

// send sends a request (headers as name, value pairs) and returns the
// answer, its body read.
func (ts *testServer) send(t testing.TB, method, path string, r io.Reader, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, ts.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// inferBody encodes an inference request for x of the given shape.
func inferBody(shape []int, x []float32, params map[string]any, outputs ...string) string {
	data, _ := json.Marshal(x)
	req := InferRequest{Inputs: []InferInput{{Name: InputName, Shape: shape, Datatype: DatatypeFP32, Parameters: params, Data: data}}}
	for _, o := range outputs {
		req.Outputs = append(req.Outputs, InferRequestedOutput{Name: o})
	}
	b, _ := json.Marshal(req)
	return string(b)
}

// infer posts body to path and decodes a 200 answer.
func (ts *testServer) infer(t testing.TB, path, body string) InferResponse {
	t.Helper()
	code, b := ts.do(t, http.MethodPost, path, body)
	if code != http.StatusOK {
		t.Fatalf("POST %s: %d %s", path, code, b)
	}
	var resp InferResponse
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatalf("POST %s: %v in %s", path, err, b)
	}
	return resp
}

// output returns the named output's FP32 data.
func output(t testing.TB, resp InferResponse, name string) []float32 {
	t.Helper()
	for _, o := range resp.Outputs {
		if o.Name == name {
			v, err := o.Float32s()
			if err != nil {
				t.Fatalf("output %s: %v", name, err)
			}
			return v
		}
	}
	t.Fatalf("no output %q in %+v", name, resp)
	return nil
}

// randomInput returns n samples of the tiny model's shape, values in
// [-1, 1], from seed.
func randomInput(n int, seed uint64) []float32 {
	x := make([]float32, n*28*28)
	s := seed*0x9e3779b97f4a7c15 + 1
	for i := range x {
		s ^= s << 13
		s ^= s >> 7
		s ^= s << 17
		x[i] = float32(s%2001)/1000 - 1
	}
	return x
}

// waitFor polls cond every few milliseconds until it holds or 10 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// forward runs x through m directly and returns a copy of the logits.
func forward(m *nn.Model, x []float32, n int) []float32 {
	return append([]float32(nil), m.Forward(x, n, false)...)
}
