package serve

import (
	"encoding/json"
	"math"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// The tests of this file check each endpoint's answer against the shapes
// of the Open Inference Protocol V2 REST spec.

func decodeJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
}

func TestHealth(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	code, b := ts.do(t, http.MethodGet, "/v2/health/live", "")
	if code != http.StatusOK || strings.TrimSpace(string(b)) != `{"live":true}` {
		t.Errorf("live: %d %s", code, b)
	}
	code, b = ts.do(t, http.MethodGet, "/v2/health/ready", "")
	if code != http.StatusServiceUnavailable || strings.TrimSpace(string(b)) != `{"ready":false}` {
		t.Errorf("ready before any model: %d %s, want 503", code, b)
	}
	if err := ts.LoadDir(saveArtifact(t, newArtifact(t, ts.be, 1, nil)), 1); err != nil {
		t.Fatal(err)
	}
	code, b = ts.do(t, http.MethodGet, "/v2/health/ready", "")
	if code != http.StatusOK || strings.TrimSpace(string(b)) != `{"ready":true}` {
		t.Errorf("ready: %d %s", code, b)
	}
	if code, _ := ts.do(t, http.MethodHead, "/v2/health/live", ""); code != http.StatusOK {
		t.Errorf("HEAD live: %d", code)
	}
}

func TestServerMetadata(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Version = "1.2.3" }, nil)
	for _, path := range []string{"/v2", "/v2/"} {
		code, b := ts.do(t, http.MethodGet, path, "")
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, b)
		}
		var got map[string]any
		decodeJSON(t, b, &got)
		want := map[string]any{"name": "maas", "version": "1.2.3", "extensions": []any{"binary_tensor_data", "explain"}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("GET %s = %v, want %v", path, got, want)
		}
	}
}

func TestModelMetadata(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	for v := 1; v <= 2; v++ {
		a := newArtifact(t, ts.be, uint64(v), nil)
		if err := ts.Load("tiny", v, a.specYAML, a.weights); err != nil {
			t.Fatal(err)
		}
	}
	want := ModelMetadata{
		Name: "tiny", Versions: []string{"2", "1"}, Platform: "maas",
		Inputs: []TensorMetadata{{Name: "input", Datatype: "FP32", Shape: []int{-1, 1, 28, 28}}},
		Outputs: []TensorMetadata{
			{Name: "logits", Datatype: "FP32", Shape: []int{-1, 10}},
			{Name: "probabilities", Datatype: "FP32", Shape: []int{-1, 10}},
			{Name: "class", Datatype: "INT64", Shape: []int{-1}},
		},
	}
	for _, path := range []string{"/v2/models/tiny", "/v2/models/tiny/versions/1", "/v2/models/tiny/versions/2"} {
		code, b := ts.do(t, http.MethodGet, path, "")
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, b)
		}
		var got ModelMetadata
		decodeJSON(t, b, &got)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("GET %s = %+v, want %+v", path, got, want)
		}
	}
}

func TestModelReady(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	a := newArtifact(t, ts.be, 1, nil)
	if err := ts.Load("tiny", 1, a.specYAML, a.weights); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/v2/models/tiny/ready", 200, `{"name":"tiny","ready":true}`},
		{"/v2/models/tiny/versions/1/ready", 200, `{"name":"tiny","ready":true}`},
		{"/v2/models/tiny/versions/2/ready", 404, "version 2 is not served (served: 1)"},
		{"/v2/models/nope/ready", 404, `"nope" is not served`},
	} {
		code, b := ts.do(t, http.MethodGet, tc.path, "")
		if code != http.StatusOK {
			var e ErrorResponse
			decodeJSON(t, b, &e)
			b = []byte(e.Error)
		}
		if code != tc.code || !strings.Contains(string(b), tc.body) {
			t.Errorf("GET %s: %d %s, want %d with %s", tc.path, code, b, tc.code, tc.body)
		}
	}
}

// TestInferProtocol checks an inference answer's shape: the OIP V2
// response fields, the outputs asked for in order, and consistent values.
func TestInferProtocol(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	a := newArtifact(t, ts.be, 1, nil)
	if err := ts.Load("tiny", 1, a.specYAML, a.weights); err != nil {
		t.Fatal(err)
	}
	x := randomInput(2, 3)
	req := `{"id":"42","inputs":[{"name":"input","shape":[2,1,28,28],"datatype":"FP32","data":` + mustJSON(x) + `}]}`
	code, b := ts.do(t, http.MethodPost, "/v2/models/tiny/infer", req)
	if code != http.StatusOK {
		t.Fatalf("infer: %d %s", code, b)
	}
	var raw map[string]json.RawMessage
	decodeJSON(t, b, &raw)
	for _, k := range []string{"model_name", "model_version", "id", "outputs"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("answer lacks %q: %s", k, b)
		}
	}
	var resp InferResponse
	decodeJSON(t, b, &resp)
	if resp.ModelName != "tiny" || resp.ModelVersion != "1" || resp.ID != "42" {
		t.Errorf("answer header %+v", resp)
	}
	wantOut := []struct {
		name, dt string
		shape    []int
	}{{"logits", "FP32", []int{2, 10}}, {"probabilities", "FP32", []int{2, 10}}, {"class", "INT64", []int{2}}}
	if len(resp.Outputs) != len(wantOut) {
		t.Fatalf("outputs %+v", resp.Outputs)
	}
	for i, w := range wantOut {
		o := resp.Outputs[i]
		if o.Name != w.name || o.Datatype != w.dt || !reflect.DeepEqual(o.Shape, w.shape) {
			t.Errorf("output %d: %s %s %v, want %s %s %v", i, o.Name, o.Datatype, o.Shape, w.name, w.dt, w.shape)
		}
	}
	logits, probs := output(t, resp, "logits"), output(t, resp, "probabilities")
	classes, err := resp.Outputs[2].Int64s()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		row, p := logits[i*10:(i+1)*10], probs[i*10:(i+1)*10]
		best, sum := 0, 0.0
		for j := range row {
			if row[j] > row[best] {
				best = j
			}
			sum += float64(p[j])
		}
		if classes[i] != int64(best) || math.Abs(sum-1) > 1e-5 {
			t.Errorf("sample %d: class %d (argmax %d), probabilities sum to %v", i, classes[i], best, sum)
		}
	}

	// Only the outputs asked for, in the server's order; no id when none is given.
	req = inferBody([]int{1, 784}, x[:784], nil, "class")
	resp = ts.infer(t, "/v2/models/tiny/versions/1/infer", req)
	if len(resp.Outputs) != 1 || resp.Outputs[0].Name != "class" || resp.ID != "" {
		t.Errorf("outputs [class]: %+v", resp)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
