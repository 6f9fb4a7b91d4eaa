package serve

import (
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/tensor"
)

type explainAnswer struct {
	Model      string         `json:"model_name"`
	Version    string         `json:"model_version"`
	Parameters map[string]any `json:"parameters"`
	Outputs    []InferOutput  `json:"outputs"`
}

// TestExplainEndpoint: POST .../explain answers the attributions the
// model's own nn.Explainer computes for the same (normalised) input, for
// each sample of a batch, by each method; raw pixels and a raw-pixel
// baseline are normalised as training did; integrated gradients report
// their completeness gap; bad parameters are 400 naming them;
// explanations count in the request metrics.
func TestExplainEndpoint(t *testing.T) {
	a := newArtifact(t, tensor.Reference, 3, nil)
	ts := newTestServer(t, nil, nil)
	if err := ts.Load("", 1, a.specYAML, a.weights); err != nil {
		t.Fatal(err)
	}
	ref, err := nn.NewExplainer(a.spec.Model, tensor.Reference)
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.SetParams(a.model.Params); err != nil {
		t.Fatal(err)
	}
	x := randomInput(2, 7)
	explain := func(body string) explainAnswer {
		t.Helper()
		code, b := ts.do(t, http.MethodPost, "/v2/models/tiny/explain", body)
		if code != http.StatusOK {
			t.Fatalf("explain: %d %s", code, b)
		}
		var ans explainAnswer
		if err := json.Unmarshal(b, &ans); err != nil {
			t.Fatal(err)
		}
		return ans
	}
	withParams := func(body string, params map[string]any) string {
		var m map[string]any
		json.Unmarshal([]byte(body), &m)
		m["parameters"] = params
		b, _ := json.Marshal(m)
		return string(b)
	}
	for _, c := range []struct {
		params map[string]any
		opts   nn.ExplainOptions
	}{
		{map[string]any{}, nn.ExplainOptions{Method: nn.IntegratedGradients, Class: -1}},
		{map[string]any{"method": "integrated_gradients", "steps": 20, "class": 4}, nn.ExplainOptions{Method: nn.IntegratedGradients, Steps: 20, Class: 4}},
		{map[string]any{"method": "saliency"}, nn.ExplainOptions{Method: nn.Saliency, Class: -1}},
		{map[string]any{"method": "gradcam", "class": 2}, nn.ExplainOptions{Method: nn.GradCAM, Class: 2}},
	} {
		ans := explain(withParams(inferBody([]int{2, 1, 28, 28}, x, nil), c.params))
		attr := output(t, InferResponse{Outputs: ans.Outputs}, OutputAttributions)
		probs := output(t, InferResponse{Outputs: ans.Outputs}, OutputProbability)
		per := len(attr) / 2
		for s := range 2 {
			want, err := ref.Explain(x[s*784:(s+1)*784], c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if e := maxRel(attr[s*per:(s+1)*per], want.Attributions); e > 1e-5 {
				t.Errorf("%v sample %d: attributions differ from nn.Explainer's by %.2g (relative)", c.params, s, e)
			}
			if e := maxRel(probs[s*10:(s+1)*10], want.Probs); e > 1e-5 {
				t.Errorf("%v sample %d: probabilities differ by %.2g", c.params, s, e)
			}
			if c.opts.Method == nn.IntegratedGradients {
				// The gap reported is the attributions' own.
				gap := ans.Parameters["completeness_gap"].([]any)[s].(float64)
				d := ans.Parameters["target"].([]any)[s].(float64) - ans.Parameters["baseline_target"].([]any)[s].(float64)
				var sum float64
				for _, v := range attr[s*per : (s+1)*per] {
					sum += float64(v)
				}
				if want := math.Abs(sum - d); math.Abs(gap-want) > 1e-4*math.Max(1, math.Abs(d)) {
					t.Errorf("%v sample %d: completeness gap %.4g reported, |Σ attributions − (f(x) − f(b))| = %.4g", c.params, s, gap, want)
				}
			}
		}
		if ans.Parameters["method"] != c.opts.Method {
			t.Errorf("answer's method %v, want %s", ans.Parameters["method"], c.opts.Method)
		}
	}

	// Raw pixels, and a black baseline given as a raw pixel: the same as
	// the normalised input and baseline.
	raw := make([]float32, 784)
	norm := make([]float32, 784)
	black := make([]float32, 784)
	for i := range raw {
		raw[i] = float32((i * 37) % 256)
		norm[i] = (raw[i]/255 - 0.1307) / 0.3081
		black[i] = (0 - 0.1307) / 0.3081
	}
	ans := explain(withParams(inferBody([]int{1, 1, 28, 28}, raw, map[string]any{ParamRawPixels: true}), map[string]any{"baseline": 0}))
	want, err := ref.Explain(norm, nn.ExplainOptions{Method: nn.IntegratedGradients, Class: -1, Baseline: black})
	if err != nil {
		t.Fatal(err)
	}
	if e := maxRel(output(t, InferResponse{Outputs: ans.Outputs}, OutputAttributions), want.Attributions); e > 1e-4 {
		t.Errorf("raw pixels with a black baseline: attributions differ by %.2g", e)
	}

	for _, c := range []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"method": "lime"}, `"method" is "lime"`},
		{map[string]any{"class": 10}, `"class" is 10: model tiny has classes 0..9`},
		{map[string]any{"steps": 1}, `"steps" is 1`},
		{map[string]any{"steps": 2.5}, `"steps" must be a whole number`},
		{map[string]any{"baseline": []float32{1, 2}}, `"baseline" must be a number or 784 numbers`},
		{map[string]any{"method": "gradcam", "layer": "fc1"}, `"fc1" is not a conv2d layer`},
	} {
		code, b := ts.do(t, http.MethodPost, "/v2/models/tiny/explain", withParams(inferBody([]int{1, 1, 28, 28}, x[:784], nil), c.params))
		var e ErrorResponse
		json.Unmarshal(b, &e)
		if code != http.StatusBadRequest || !strings.Contains(e.Error, c.want) {
			t.Errorf("%v: %d %s, want 400 saying %s", c.params, code, b, c.want)
		}
	}
	if code, b := ts.do(t, http.MethodGet, "/v2", ""); code != 200 || !strings.Contains(string(b), `"explain"`) {
		t.Errorf("server metadata: %s", b)
	}
	if n := counterValue(t, ts, "maas_serve_requests_total", "200"); n < 5 {
		t.Errorf("maas_serve_requests_total{code=200} = %v after 5 explanations", n)
	}
}

func maxRel(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var d, m float64
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i]-want[i])))
		m = math.Max(m, math.Abs(float64(want[i])))
	}
	if m == 0 {
		return d
	}
	return d / m
}

// counterValue sums the counter name's series whose code label is code.
func counterValue(t *testing.T, ts *testServer, name, code string) float64 {
	t.Helper()
	mfs, err := ts.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" && l.GetValue() == code {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
