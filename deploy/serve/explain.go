package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"

	"github.com/maas-ml/maas/nn"
)

// Explanations (POST /v2/models/{m}[/versions/{v}]/explain), an extension
// of OIP V2: the body is an inference request, with the explanation asked
// for in its "parameters":
//
//	method    integrated_gradients (default), saliency or gradcam
//	class     the output class to explain (default: the predicted one)
//	steps     integrated gradients' points on the path (default 50)
//	baseline  integrated gradients' start: a number for every input value,
//	          or one value per input value, in the input's space (raw
//	          pixels with "raw_pixels"; default 0 in the model's
//	          normalised space)
//	layer     Grad-CAM's conv2d layer (default: the last)
//
// The answer has the outputs "attributions" (FP32, [N, the input's
// shape], or [N, H', W'] for Grad-CAM), "probabilities" and "class", and
// in its "parameters" the method, the steps, the layer, and for
// integrated gradients each sample's "target" (the class logit),
// "baseline_target" and "completeness_gap" |Σ attributions − (target −
// baseline_target)|. Explanations queue with the inferences of their
// version and run alone, each sample as one forward and backward pass
// (all of integrated gradients' points in one batch).

// Explanation parameters (in the request's "parameters").
const (
	ParamMethod   = "method"
	ParamClass    = "class"
	ParamSteps    = "steps"
	ParamBaseline = "baseline"
	ParamLayer    = "layer"
)

// OutputAttributions is the output tensor of an explanation.
const OutputAttributions = "attributions"

// ExplainExtension is the extension's name in the server metadata.
const ExplainExtension = "explain"

// explainRequest is an explanation's options and, once done, its results.
type explainRequest struct {
	opts    nn.ExplainOptions
	results []*nn.Explanation
}

// explain answers POST /v2/models/{m}[/versions/{v}]/explain on v and
// returns the status code.
func explain(s *Server, w http.ResponseWriter, r *http.Request, v *version) int {
	if v.text != nil {
		err := badRequest("model %s generates text; explanations are of classifiers", v.name)
		writeError(w, err)
		return statusOf(err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	body, err := s.readBody(w, r)
	if err != nil {
		writeError(w, err)
		return statusOf(err)
	}
	defer putBuffer(body)
	headerLen, err := headerLength(r)
	var d decoded
	if err == nil {
		d, err = decodeInfer(body.Bytes(), headerLen, v)
	}
	if err == nil {
		var opts nn.ExplainOptions
		if opts, err = explainOptions(body.Bytes(), v); err == nil {
			j := &job{ctx: ctx, x: d.x, n: d.n, explain: &explainRequest{opts: opts}, done: make(chan struct{})}
			if !v.runInline(j) {
				err = v.batch.submit(j)
			}
			if err == nil {
				if code := s.await(ctx, w, r, v, j); code != 0 {
					return code
				}
				var b []byte
				if b, err = explainResponse(v, d, j.explain); err == nil {
					writeBody(w, http.StatusOK, b)
					return http.StatusOK
				}
			}
		}
	}
	writeError(w, err)
	return statusOf(err)
}

// explainOptions reads the explanation's parameters.
func explainOptions(body []byte, v *version) (nn.ExplainOptions, error) {
	var req struct {
		Inputs []struct {
			Parameters map[string]any `json:"parameters"`
		} `json:"inputs"`
		Parameters map[string]json.RawMessage `json:"parameters"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nn.ExplainOptions{}, badRequest("%v", err)
	}
	o := nn.ExplainOptions{Method: nn.IntegratedGradients, Class: -1}
	p := req.Parameters
	str := func(key string, dst *string) error {
		if raw, ok := p[key]; ok {
			if err := json.Unmarshal(raw, dst); err != nil {
				return badRequest("parameter %q must be a string", key)
			}
		}
		return nil
	}
	integer := func(key string, dst *int) error {
		if raw, ok := p[key]; ok {
			var f float64
			if err := json.Unmarshal(raw, &f); err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<30 {
				return badRequest("parameter %q must be a whole number", key)
			}
			*dst = int(f)
		}
		return nil
	}
	if err := errors.Join(str(ParamMethod, &o.Method), str(ParamLayer, &o.Layer), integer(ParamClass, &o.Class), integer(ParamSteps, &o.Steps)); err != nil {
		return o, err
	}
	if !slices.Contains(nn.ExplainMethods, o.Method) {
		return o, badRequest("parameter %q is %q: use one of %v", ParamMethod, o.Method, nn.ExplainMethods)
	}
	if _, ok := p[ParamClass]; ok && (o.Class < 0 || o.Class >= v.classes) {
		return o, badRequest("parameter %q is %d: model %s has classes 0..%d", ParamClass, o.Class, v.name, v.classes-1)
	}
	if _, ok := p[ParamSteps]; ok && (o.Steps < 2 || o.Steps > 1024) {
		return o, badRequest("parameter %q is %d: integrated gradients take 2..1024 points", ParamSteps, o.Steps)
	}
	if raw, ok := p[ParamBaseline]; ok {
		var one float32
		var all []float32
		switch {
		case json.Unmarshal(raw, &one) == nil:
			o.Baseline = make([]float32, v.sampleSize)
			for i := range o.Baseline {
				o.Baseline[i] = one
			}
		case json.Unmarshal(raw, &all) == nil && len(all) == v.sampleSize:
			o.Baseline = all
		default:
			return o, badRequest("parameter %q must be a number or %d numbers (one per input value)", ParamBaseline, v.sampleSize)
		}
		// Given as the input is: raw pixels are normalised alike.
		if len(req.Inputs) == 1 && req.Inputs[0].Parameters[ParamRawPixels] == true {
			if i, ok := v.norm.apply(o.Baseline); !ok {
				return o, badRequest("parameter %q: value %d is %v, outside the raw pixels' [0, 255]", ParamBaseline, i, o.Baseline[i])
			}
		}
	}
	return o, nil
}

// explainJob runs an explanation request, sample by sample, on b's
// explainer (built on first use from b's model). b.mu is held.
func (b *batcher) explainJob(j *job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("serve: explanation failed: %v", r)
		}
	}()
	if b.explainer == nil {
		e, err := nn.NewExplainer(b.model.Spec, b.be)
		if err != nil {
			return badRequest("%v", err)
		}
		if err := e.SetParams(b.model.Params); err != nil {
			return err
		}
		b.explainer = e
	}
	ss := b.sampleSize
	for i := range j.n {
		if j.ctx.Err() != nil {
			return j.ctx.Err()
		}
		ex, err := b.explainer.Explain(j.x[i*ss:(i+1)*ss], j.explain.opts)
		if err != nil {
			return badRequest("%v", err)
		}
		j.explain.results = append(j.explain.results, ex)
	}
	return nil
}

// explainResponse is the answer to an explanation.
func explainResponse(v *version, d decoded, e *explainRequest) ([]byte, error) {
	type tensor struct {
		Name     string `json:"name"`
		Shape    []int  `json:"shape"`
		Datatype string `json:"datatype"`
		Data     any    `json:"data"`
	}
	rs := e.results
	first := rs[0]
	var attr, probs []float32
	classes := make([]int64, len(rs))
	targets, baseTargets, gaps := make([]float64, len(rs)), make([]float64, len(rs)), make([]float64, len(rs))
	for i, r := range rs {
		attr = append(attr, r.Attributions...)
		probs = append(probs, r.Probs...)
		classes[i] = int64(r.Class)
		targets[i], baseTargets[i], gaps[i] = r.Target, r.BaselineTarget, r.CompletenessGap
	}
	for _, f := range attr {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return nil, fmt.Errorf("serve: an attribution is %v; the input is likely far outside the range the model was trained on", f)
		}
	}
	params := map[string]any{ParamMethod: first.Method}
	switch first.Method {
	case nn.IntegratedGradients:
		params[ParamSteps], params["target"], params["baseline_target"], params["completeness_gap"] = first.Steps, targets, baseTargets, gaps
	case nn.GradCAM:
		params[ParamLayer] = first.Layer
	}
	out := struct {
		Model      string         `json:"model_name"`
		Version    string         `json:"model_version"`
		ID         string         `json:"id,omitempty"`
		Parameters map[string]any `json:"parameters"`
		Outputs    []tensor       `json:"outputs"`
	}{Model: v.name, Version: v.label, ID: d.id, Parameters: params, Outputs: []tensor{
		{OutputAttributions, append([]int{len(rs)}, first.Shape...), DatatypeFP32, attr},
		{OutputProbability, []int{len(rs), v.classes}, DatatypeFP32, probs},
		{OutputClass, []int{len(rs)}, DatatypeINT64, classes},
	}}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
