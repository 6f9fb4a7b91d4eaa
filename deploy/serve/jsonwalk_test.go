package serve

import (
	"errors"
	"strings"
	"testing"

	"github.com/maas-ml/maas/internal/dataset"
)

// tinyVersion is the tiny model's shape as decodeInfer sees it (no model).
func tinyVersion() *version {
	return &version{name: "tiny", inShape: []int{1, 28, 28}, sampleSize: 784, classes: 10, maxBatch: 8,
		norm: newPixelNorm(dataset.Normalization{Mean: []float32{0.5}, Std: []float32{0.25}}, 1, 784)}
}

// TestDecodeInferSyntax: the one-pass reader accepts what JSON allows
// around the data and refuses malformed documents with ErrBadRequest.
func TestDecodeInferSyntax(t *testing.T) {
	v := tinyVersion()
	data := "[" + strings.TrimSuffix(strings.Repeat("0.5,", 784), ",") + "]"
	in := `{"name":"input","shape":[1,784],"datatype":"FP32","data":` + data + `}`
	for _, tc := range []struct {
		name, body, err string
	}{
		{"plain", `{"inputs":[` + in + `]}`, ""},
		{"spaces and unknown fields", " {\n\"parameters\": {\"a\": [1, {\"b\": null}], \"c\": \"x\\\"y\"},\t\"inputs\" : [ " + in + " ] , \"future\": [true, false, -1.5e3] }\n", ""},
		{"escaped key", `{"in\u0070uts":[` + in + `]}`, ""},
		{"data first", `{"inputs":[{"data":` + data + `,"datatype":"FP32","shape":[1,1,28,28],"name":"input"}]}`, ""},
		{"raw pixels", `{"inputs":[{"name":"input","shape":[1,784],"datatype":"FP32","parameters":{"raw_pixels":true},"data":` + data + `}]}`, ""},
		{"id and outputs", `{"id":"a\"b","inputs":[` + in + `],"outputs":[{"name":"class","parameters":{}}]}`, ""},
		{"empty", ``, "malformed JSON at byte 0: expected an object"},
		{"array", `[]`, "expected an object"},
		{"trailing", `{"inputs":[` + in + `]} {}`, "unexpected data after the request"},
		{"bad literal", `{"x": tru, "inputs":[` + in + `]}`, "invalid value"},
		{"bad number", `{"x": 01, "inputs":[` + in + `]}`, "invalid value"},
		{"missing colon", `{"inputs" [` + in + `]}`, "expected ':'"},
		{"missing comma", `{"id":"1" "inputs":[]}`, "expected ',' or '}'"},
		{"unterminated string", `{"id":"1`, "unterminated string"},
		{"control char", "{\"id\":\"a\x01b\"}", "control character"},
		{"deep", `{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, "nested too deep"},
		{"id type", `{"id":7,"inputs":[` + in + `]}`, `field "id": number where string was expected`},
		{"shape type", `{"inputs":[{"name":"input","shape":"1,784"}]}`, `field "shape": string`},
		{"data error names the index", `{"inputs":[{"data":[1,[2]]}]}`, `input "inputs[0]": ragged data`},
		{"null data", `{"inputs":[{"name":"input","shape":[1,784],"datatype":"FP32","data":null}]}`, "no data"},
	} {
		_, err := decodeInfer([]byte(tc.body), noHeaderLength, v)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrBadRequest)):
			t.Errorf("%s: %v, want ErrBadRequest with %q", tc.name, err, tc.err)
		}
	}
}

// FuzzDecodeInfer: any body decodes or fails with ErrBadRequest; a decoded
// one holds n whole samples.
func FuzzDecodeInfer(f *testing.F) {
	f.Add([]byte(`{"inputs":[{"name":"input","shape":[1,784],"datatype":"FP32","data":[1,2]}]}`))
	f.Add([]byte(`{"id":"x","inputs":[{"name":"input","shape":[1,1,28,28],"datatype":"FP32","data":[[[[1]]]]}],"outputs":[{"name":"class"}]}`))
	f.Add([]byte(`{"parameters":{"a":[{"b":"\u00e9"}]},"inputs":[]}`))
	v := tinyVersion()
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := decodeInfer(body, noHeaderLength, v)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("%q: %v is not ErrBadRequest", body, err)
			}
			return
		}
		if d.n < 1 || d.n > v.maxBatch || len(d.x) != d.n*v.sampleSize {
			t.Fatalf("%q: n %d with %d values", body, d.n, len(d.x))
		}
	})
}
