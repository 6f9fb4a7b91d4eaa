package serve

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestRequestErrors checks that every bad request answers its status with
// a JSON error that says what was wrong.
func TestRequestErrors(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxBodyBytes = 64 << 10 }, nil)
	a := newArtifact(t, ts.be, 1, nil)
	if err := ts.Load("tiny", 1, a.specYAML, a.weights); err != nil {
		t.Fatal(err)
	}
	x := mustJSON(randomInput(1, 1))
	in := func(fields string) string { return `{"inputs":[{` + fields + `}]}` }
	big := `{"inputs":[{"name":"input","shape":[1,784],"datatype":"FP32","data":[` + strings.Repeat("0.5,", 40000) + `0]}]}`
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		msg                      string
	}{
		{"malformed JSON", "POST", "/v2/models/tiny/infer", `{"inputs":[`, 400, "malformed JSON"},
		{"wrong field type", "POST", "/v2/models/tiny/infer", `{"inputs":{}}`, 400, "inputs"},
		{"no inputs", "POST", "/v2/models/tiny/infer", `{"inputs":[]}`, 400, "no inputs"},
		{"input name", "POST", "/v2/models/tiny/infer", in(`"name":"pixels","shape":[1,784],"datatype":"FP32","data":` + x), 400, `input "pixels": unknown; the model has one input, "input"`},
		{"datatype", "POST", "/v2/models/tiny/infer", in(`"name":"input","shape":[1,784],"datatype":"INT32","data":` + x), 400, `input "input": datatype "INT32": expected FP32`},
		{"shape", "POST", "/v2/models/tiny/infer", in(`"name":"input","shape":[1,28,28],"datatype":"FP32","data":` + x), 400, `input "input": shape [1, 28, 28]: expected [N, 1, 28, 28] or [N, 784]`},
		{"shape zero", "POST", "/v2/models/tiny/infer", in(`"name":"input","shape":[0,784],"datatype":"FP32","data":[]`), 400, `expected [N, 1, 28, 28]`},
		{"batch too big", "POST", "/v2/models/tiny/infer", in(`"name":"input","shape":[9,784],"datatype":"FP32","data":` + x), 400, "exceeds the model's max_batch_size 8"},
		{"too few values", "POST", "/v2/models/tiny/infer", in(`"name":"input","shape":[1,784],"datatype":"FP32","data":[1,2,3]`), 400, `input "input": 3 values for shape [1, 784]: expected 784`},
		{"too many values", "POST", "/v2/models/tiny/infer", in(`"name":"input","shape":[1,784],"datatype":"FP32","data":[` + strings.Repeat("1,", 784) + `1]`), 400, "more than the 784 values expected"},
		{"nesting", "POST", "/v2/models/tiny/infer", in(`"name":"input","shape":[1,784],"datatype":"FP32","data":[[` + strings.Repeat("1,", 391) + `1],[` + strings.Repeat("1,", 391) + `1]]`), 400, "data nested as [2, 392] but the shape is [1, 784]"},
		{"not a number", "POST", "/v2/models/tiny/infer", in(`"name":"input","shape":[1,784],"datatype":"FP32","data":[true]`), 400, "where a number was expected"},
		{"out of range", "POST", "/v2/models/tiny/infer", in(`"name":"input","shape":[1,784],"datatype":"FP32","data":[1e39]`), 400, "out of the FP32 range"},
		{"no data", "POST", "/v2/models/tiny/infer", in(`"name":"input","shape":[1,784],"datatype":"FP32"`), 400, "no data"},
		{"raw pixels range", "POST", "/v2/models/tiny/infer", in(`"name":"input","shape":[1,784],"datatype":"FP32","parameters":{"raw_pixels":true},"data":` + x), 400, "outside [0, 255]"},
		{"raw pixels type", "POST", "/v2/models/tiny/infer", in(`"name":"input","shape":[1,784],"datatype":"FP32","parameters":{"raw_pixels":"yes"},"data":` + x), 400, "is not true or false"},
		{"two inputs", "POST", "/v2/models/tiny/infer", `{"inputs":[{"name":"input"},{"name":"input"}]}`, 400, "given 2 times"},
		{"unknown output", "POST", "/v2/models/tiny/infer", `{"inputs":[{"name":"input","shape":[1,784],"datatype":"FP32","data":` + x + `}],"outputs":[{"name":"embedding"}]}`, 400, `output "embedding": unknown`},
		{"unknown model", "POST", "/v2/models/nope/infer", inferBody([]int{1, 784}, randomInput(1, 1), nil), 404, `model not found: "nope" is not served`},
		{"unknown version", "POST", "/v2/models/tiny/versions/7/infer", inferBody([]int{1, 784}, randomInput(1, 1), nil), 404, "version 7 is not served"},
		{"bad version", "GET", "/v2/models/tiny/versions/x1", "", 404, `version "x1"`},
		{"method infer", "GET", "/v2/models/tiny/infer", "", 405, "method not allowed; use POST"},
		{"method metadata", "POST", "/v2/models/tiny", "{}", 405, "use GET, HEAD"},
		{"method live", "DELETE", "/v2/health/live", "", 405, "method not allowed"},
		{"too large", "POST", "/v2/models/tiny/infer", big, 413, "request body over 65536 bytes"},
		{"no endpoint", "GET", "/v1/models", "", 404, "no endpoint /v1/models"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := ts.do(t, tc.method, tc.path, tc.body)
			var e ErrorResponse
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("%d, body %s is not a JSON error: %v", code, b, err)
			}
			if code != tc.code || !strings.Contains(e.Error, tc.msg) {
				t.Errorf("%d %q, want %d with %q", code, e.Error, tc.code, tc.msg)
			}
		})
	}
	// The method check tells what is allowed.
	req, _ := http.NewRequest(http.MethodGet, ts.url+"/v2/models/tiny/infer", nil)
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Allow"); got != "POST" {
		t.Errorf("Allow: %q", got)
	}
}
