package serve

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/maas-ml/maas/tensor"
)

// binaryBody is a request with the binary tensor data extension: the JSON
// header (with the input's binary_data_size) and x's little-endian bytes.
func binaryBody(shape []int, x []float32, inParams map[string]any, outputs []InferRequestedOutput, reqParams map[string]any) ([]byte, int) {
	p := map[string]any{ParamBinaryDataSize: 4 * len(x)}
	for k, v := range inParams {
		p[k] = v
	}
	hdr, _ := json.Marshal(map[string]any{
		"inputs":     []map[string]any{{"name": InputName, "datatype": DatatypeFP32, "shape": shape, "parameters": p}},
		"outputs":    outputs,
		"parameters": reqParams,
	})
	body := append([]byte(nil), hdr...)
	for _, f := range x {
		body = binary.LittleEndian.AppendUint32(body, math.Float32bits(f))
	}
	return body, len(hdr)
}

// postBinary sends body with the extension's header (headerLen; negative:
// none) and returns the status, the answer's header length (-1: none) and
// its body.
func (ts *testServer) postBinary(t *testing.T, path string, body []byte, headerLen string) (int, int, []byte, http.Header) {
	t.Helper()
	var header []string
	if headerLen != "" {
		header = []string{HeaderContentLength, headerLen}
	}
	resp, b := ts.send(t, http.MethodPost, path, bytes.NewReader(body), header...)
	var err error
	hl := -1
	if h := resp.Header.Get(HeaderContentLength); h != "" {
		if hl, err = strconv.Atoi(h); err != nil {
			t.Fatalf("answer's %s %q", HeaderContentLength, h)
		}
	}
	return resp.StatusCode, hl, b, resp.Header
}

// TestBinaryTensorData: the binary tensor data extension. A binary input
// gives the same answer as the same values in JSON; outputs asked for as
// binary data (each, or all with binary_data_output) come back as the
// same values after the JSON header, whose length the answer's header
// gives, with binary_data_size in their JSON; raw pixels work in binary;
// malformed requests (a header past the body, truncated or extra data, a
// size that is not the shape's, data given twice, binary without the
// header, a bad header value) are 400 naming the fault; a body over the
// limit is 413.
func TestBinaryTensorData(t *testing.T) {
	a := newArtifact(t, tensor.Reference, 5, nil)
	ts := newTestServer(t, func(c *Config) { c.MaxBodyBytes = 64 << 10 }, nil)
	if err := ts.Load("", 1, a.specYAML, a.weights); err != nil {
		t.Fatal(err)
	}
	const n = 3
	x := randomInput(n, 11)
	want := ts.infer(t, "/v2/models/tiny/infer", inferBody([]int{n, 1, 28, 28}, x, nil))
	wantLogits, wantProbs := output(t, want, OutputLogits), output(t, want, OutputProbability)
	wantClass, _ := findOutput(t, want, OutputClass).Int64s()

	body, hl := binaryBody([]int{n, 1, 28, 28}, x, nil, nil, nil)
	code, rhl, b, _ := ts.postBinary(t, "/v2/models/tiny/infer", body, strconv.Itoa(hl))
	if code != 200 || rhl != -1 {
		t.Fatalf("binary input, JSON outputs: %d (header length %d) %s", code, rhl, b)
	}
	got, err := DecodeInferResponse(b, rhl)
	if err != nil {
		t.Fatal(err)
	}
	if !equalF32(output(t, got, OutputLogits), wantLogits) || !equalF32(output(t, got, OutputProbability), wantProbs) {
		t.Error("a binary input's answer differs from the same values' in JSON")
	}

	for _, c := range []struct {
		name    string
		outputs []InferRequestedOutput
		params  map[string]any
		binary  []string
	}{
		{"binary_data on probabilities", []InferRequestedOutput{{Name: OutputProbability, Parameters: map[string]any{ParamBinaryData: true}}, {Name: OutputClass}},
			nil, []string{OutputProbability}},
		{"binary_data_output", nil, map[string]any{ParamBinaryDataOutput: true}, []string{OutputLogits, OutputProbability, OutputClass}},
	} {
		body, hl := binaryBody([]int{n, 1, 28, 28}, x, nil, c.outputs, c.params)
		code, rhl, b, h := ts.postBinary(t, "/v2/models/tiny/infer", body, strconv.Itoa(hl))
		if code != 200 || rhl < 0 || h.Get("Content-Type") != "application/octet-stream" {
			t.Fatalf("%s: %d, header length %d, %s", c.name, code, rhl, h.Get("Content-Type"))
		}
		got, err := DecodeInferResponse(b, rhl)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, o := range got.Outputs {
			isBin := o.Raw != nil
			if isBin != contains(c.binary, o.Name) || (isBin && o.Parameters[ParamBinaryDataSize] != float64(len(o.Raw))) {
				t.Errorf("%s: output %s binary %v (parameters %v), want binary for %v", c.name, o.Name, isBin, o.Parameters, c.binary)
			}
		}
		if !equalF32(output(t, got, OutputProbability), wantProbs) {
			t.Errorf("%s: binary probabilities differ from JSON's", c.name)
		}
		cls, err := findOutput(t, got, OutputClass).Int64s()
		if err != nil || len(cls) != n || cls[0] != wantClass[0] || cls[n-1] != wantClass[n-1] {
			t.Errorf("%s: classes %v (%v), want %v", c.name, cls, err, wantClass)
		}
	}

	// Raw pixels in binary.
	px := make([]float32, 784)
	for i := range px {
		px[i] = float32(i % 256)
	}
	body, hl = binaryBody([]int{1, 784}, px, map[string]any{ParamRawPixels: true}, nil, nil)
	code, rhl, b, _ = ts.postBinary(t, "/v2/models/tiny/infer", body, strconv.Itoa(hl))
	rawWant := ts.infer(t, "/v2/models/tiny/infer", inferBody([]int{1, 784}, px, map[string]any{ParamRawPixels: true}))
	if got, err := DecodeInferResponse(b, rhl); code != 200 || err != nil || !equalF32(output(t, got, OutputLogits), output(t, rawWant, OutputLogits)) {
		t.Errorf("raw pixels in binary: %d %v", code, err)
	}

	// Malformed requests.
	ok, okLen := binaryBody([]int{1, 1, 28, 28}, x[:784], nil, nil, nil)
	withSize := func(size any) ([]byte, int) {
		hdr, _ := json.Marshal(map[string]any{"inputs": []map[string]any{{"name": InputName, "datatype": DatatypeFP32, "shape": []int{1, 1, 28, 28},
			"parameters": map[string]any{ParamBinaryDataSize: size}}}})
		return append(hdr, ok[okLen:]...), len(hdr)
	}
	small, smallLen := withSize(3132)
	odd, oddLen := withSize(3135)
	bad, badLen := withSize("lots")
	twice, _ := json.Marshal(map[string]any{"inputs": []map[string]any{{"name": InputName, "datatype": DatatypeFP32, "shape": []int{1, 784},
		"data": x[:784], "parameters": map[string]any{ParamBinaryDataSize: 3136}}}})
	for _, c := range []struct {
		name      string
		body      []byte
		headerLen string
		code      int
		want      string
	}{
		{"header past the body", ok, strconv.Itoa(len(ok) + 1), 400, "the body has"},
		{"header not a number", ok, "ten", 400, `"ten" is not a byte count`},
		{"truncated data", ok[:len(ok)-4], strconv.Itoa(okLen), 400, "truncated"},
		{"extra bytes", append(append([]byte(nil), ok...), 1, 2, 3, 4), strconv.Itoa(okLen), 400, "4 bytes after"},
		{"size not the shape's", small, strconv.Itoa(smallLen), 400, "expected 3136"},
		{"size not whole FP32s", odd, strconv.Itoa(oddLen), 400, "not a whole number"},
		{"size not a number", bad, strconv.Itoa(badLen), 400, "is not a byte count"},
		{"data and binary", append(twice, ok[okLen:]...), strconv.Itoa(len(twice)), 400, `both "data" and binary_data_size`},
		{"binary without the header", ok[:okLen], "", 400, "without the header"},
		{"over the limit", append(make([]byte, 70<<10), ok...), strconv.Itoa(70 << 10), 413, "over"},
	} {
		code, _, b, _ := ts.postBinary(t, "/v2/models/tiny/infer", c.body, c.headerLen)
		var e ErrorResponse
		json.Unmarshal(b, &e)
		if code != c.code || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s: %d %s, want %d saying %q", c.name, code, b, c.code, c.want)
		}
	}
	if code, b := ts.do(t, http.MethodGet, "/v2", ""); code != 200 || !strings.Contains(string(b), `"binary_tensor_data"`) {
		t.Errorf("server metadata: %s", b)
	}
}

func findOutput(t *testing.T, resp InferResponse, name string) InferOutput {
	t.Helper()
	for _, o := range resp.Outputs {
		if o.Name == name {
			return o
		}
	}
	t.Fatalf("no output %q", name)
	return InferOutput{}
}

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}
