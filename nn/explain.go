package nn

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/maas-ml/maas/tensor"
)

// Explanation methods (Explainer.Explain).
const (
	// IntegratedGradients: (x − b) ⊙ the mean gradient of the class's
	// logit along the straight path from the baseline b to x (trapezoid
	// rule over Steps points, all in one forward and backward pass).
	IntegratedGradients = "integrated_gradients"
	// Saliency: the class logit's gradient times the input.
	Saliency = "saliency"
	// GradCAM: ReLU(Σ_c α_c A_c) over a convolution's output A, with α_c
	// the mean over positions of the class logit's gradient on channel c.
	GradCAM = "gradcam"
)

// ExplainMethods are the methods Explain knows.
var ExplainMethods = []string{IntegratedGradients, Saliency, GradCAM}

// DefaultExplainSteps is integrated gradients' default number of points.
const DefaultExplainSteps = 50

// ErrExplain is wrapped by every error about an explanation that cannot be
// computed (a bad option, a model that cannot be explained so).
var ErrExplain = errors.New("nn: cannot explain")

// ExplainOptions choose an explanation.
type ExplainOptions struct {
	Method string
	// Class is the output class explained; negative: the predicted one.
	Class int
	// Steps is integrated gradients' number of points on the path
	// (default DefaultExplainSteps, at least 2).
	Steps int
	// Baseline is integrated gradients' start, one sample in the model's
	// (normalised) input space; nil: zeros.
	Baseline []float32
	// Layer names Grad-CAM's convolution (default: the last conv2d).
	Layer string
}

// Explanation is an attribution of one sample's output to its input.
type Explanation struct {
	Method string
	Class  int
	// Logits and Probs are the model's output on the sample.
	Logits, Probs []float32
	// Attributions are shaped like the input sample (Shape), except for
	// Grad-CAM: the layer's (H', W') map.
	Attributions []float32
	Shape        []int
	// Integrated gradients: the class logit at the sample and at the
	// baseline, and |Σ attributions − (Target − BaselineTarget)|.
	Target, BaselineTarget float64
	CompletenessGap        float64
	Steps                  int
	Layer                  string // Grad-CAM's
}

// Explainer computes explanations with a model of its own: the served
// model's weights in a model built for gradients with respect to its input
// (every layer passes its input gradient back, convolutions and dense
// layers skip their weights' gradients, no layer fused with the next,
// dropout off). It is not safe for concurrent use.
type Explainer struct {
	m *Model
}

// NewExplainer builds an explainer for models of spec; give it weights
// with SetParams. A model whose input is token ids (an embedding first)
// cannot be explained by its input.
func NewExplainer(spec ModelSpec, b tensor.Backend) (*Explainer, error) {
	s := spec
	s.Layers = slices.Clone(spec.Layers)
	for i := range s.Layers {
		if s.Layers[i].Type == "dropout" {
			s.Layers[i].Rate = 0
		}
	}
	if len(s.Layers) > 0 && s.Layers[0].Type == "embedding" {
		return nil, fmt.Errorf("%w: the model's input is token ids (an embedding layer): attributions need a real-valued input", ErrExplain)
	}
	m, err := buildUnfused(s, b)
	if err != nil {
		return nil, err
	}
	for _, l := range m.Layers {
		setNeedInputGrad(l, true)
		if b, ok := l.(interface{ base() *layerBase }); ok {
			b.base().inputGradOnly = true // convolutions and dense layers skip their weights' gradients
		}
	}
	if out := m.OutShape(); len(out) != 1 {
		return nil, fmt.Errorf("%w: the model's output is %v per sample; explanations are of a classifier's (classes) output", ErrExplain, out)
	}
	return &Explainer{m: m}, nil
}

// SetParams gives the explainer the model's parameters (the flat vector
// of a model of the same spec).
func (e *Explainer) SetParams(p []float32) error {
	if len(p) != len(e.m.Params) {
		return fmt.Errorf("%w: %d parameters for a model of %d", ErrWeights, len(p), len(e.m.Params))
	}
	copy(e.m.Params, p)
	e.m.WeightsChanged()
	return nil
}

// Model is the explainer's model.
func (e *Explainer) Model() *Model { return e.m }

// Explain explains the model's output on the one sample x (normalised, of
// the model's input shape).
func (e *Explainer) Explain(x []float32, o ExplainOptions) (*Explanation, error) {
	size := prod(e.m.InShape())
	if len(x) != size {
		return nil, fmt.Errorf("%w: a sample of %d values, want %d (%v)", ErrExplain, len(x), size, e.m.InShape())
	}
	classes := e.m.OutShape()[0]
	if o.Class >= classes {
		return nil, fmt.Errorf("%w: class %d: the model has %d classes", ErrExplain, o.Class, classes)
	}
	switch o.Method {
	case IntegratedGradients:
		return e.integratedGradients(x, o, classes)
	case Saliency:
		return e.saliency(x, o, classes)
	case GradCAM:
		return e.gradCAM(x, o, classes)
	}
	return nil, fmt.Errorf("%w: method %q: use one of %v", ErrExplain, o.Method, ExplainMethods)
}

// backward propagates one-hot dL/dy (on class, for each of n rows) down
// to the input of layer stop and returns that gradient.
func (e *Explainer) backward(n, classes, class, stop int) []float32 {
	m := e.m
	dy := make([]float32, n*classes)
	for r := range n {
		dy[r*classes+class] = 1
	}
	for i := len(m.Layers) - 1; i >= stop; i-- {
		dy = m.Layers[i].Backward(dy, n)
	}
	return dy
}

func (e *Explainer) forward(x []float32, n int) []float32 {
	return e.m.Forward(x, n, true)
}

func pick(class int, logits []float32) int {
	if class >= 0 {
		return class
	}
	best := 0
	for k, v := range logits {
		if v > logits[best] {
			best = k
		}
	}
	return best
}

func softmax(logits []float32) []float32 {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	var sum float64
	out := make([]float32, len(logits))
	for _, v := range logits {
		sum += math.Exp(float64(v) - mx)
	}
	for k, v := range logits {
		out[k] = float32(math.Exp(float64(v)-mx) / sum)
	}
	return out
}

func (e *Explainer) integratedGradients(x []float32, o ExplainOptions, classes int) (*Explanation, error) {
	steps := o.Steps
	if steps == 0 {
		steps = DefaultExplainSteps
	}
	if steps < 2 || steps > 1024 {
		return nil, fmt.Errorf("%w: integrated gradients' steps must be 2..1024, got %d", ErrExplain, steps)
	}
	size := len(x)
	base := o.Baseline
	if base == nil {
		base = make([]float32, size)
	} else if len(base) != size {
		return nil, fmt.Errorf("%w: a baseline of %d values, want %d", ErrExplain, len(base), size)
	}
	// Row k is b + α_k (x − b), α_k = k / (steps − 1): row 0 the
	// baseline, the last x itself.
	batch := make([]float32, steps*size)
	for k := range steps {
		a := float32(k) / float32(steps-1)
		row := batch[k*size : (k+1)*size]
		for i := range row {
			row[i] = base[i] + a*(x[i]-base[i])
		}
	}
	out := e.forward(batch, steps)
	logits := slices.Clone(out[(steps-1)*classes : steps*classes])
	class := pick(o.Class, logits)
	fx, fb := float64(out[(steps-1)*classes+class]), float64(out[class])
	g := e.backward(steps, classes, class, 0)
	// Trapezoid rule: the end points weigh half.
	attr := make([]float32, size)
	var total float64
	for i := range size {
		var s float64
		for k := range steps {
			w := 1.0
			if k == 0 || k == steps-1 {
				w = 0.5
			}
			s += w * float64(g[k*size+i])
		}
		a := float64(x[i]-base[i]) * s / float64(steps-1)
		attr[i] = float32(a)
		total += a
	}
	return &Explanation{Method: IntegratedGradients, Class: class, Logits: logits, Probs: softmax(logits),
		Attributions: attr, Shape: slices.Clone(e.m.InShape()), Target: fx, BaselineTarget: fb,
		CompletenessGap: math.Abs(total - (fx - fb)), Steps: steps}, nil
}

func (e *Explainer) saliency(x []float32, o ExplainOptions, classes int) (*Explanation, error) {
	logits := slices.Clone(e.forward(x, 1))
	class := pick(o.Class, logits)
	g := e.backward(1, classes, class, 0)
	attr := make([]float32, len(x))
	for i := range x {
		attr[i] = g[i] * x[i]
	}
	return &Explanation{Method: Saliency, Class: class, Logits: logits, Probs: softmax(logits),
		Attributions: attr, Shape: slices.Clone(e.m.InShape()), Target: float64(logits[class])}, nil
}

func (e *Explainer) gradCAM(x []float32, o ExplainOptions, classes int) (*Explanation, error) {
	m := e.m
	li := -1
	for i, l := range m.Layers {
		if _, ok := l.(*Conv2D); ok && (o.Layer == "" || l.Name() == o.Layer) {
			li = i
		}
	}
	if li < 0 {
		if o.Layer == "" {
			return nil, fmt.Errorf("%w: Grad-CAM needs a conv2d layer; the model has none", ErrExplain)
		}
		var convs []string
		for _, l := range m.Layers {
			if _, ok := l.(*Conv2D); ok {
				convs = append(convs, l.Name())
			}
		}
		return nil, fmt.Errorf("%w: Grad-CAM layer %q is not a conv2d layer of the model (conv2d layers: %v)", ErrExplain, o.Layer, convs)
	}
	var act []float32
	h := x
	for i, l := range m.Layers {
		h = l.Forward(h, 1, true)
		if i == li {
			act = slices.Clone(h)
		}
	}
	logits := slices.Clone(h)
	class := pick(o.Class, logits)
	g := e.backward(1, classes, class, li+1) // dL/d(the layer's output)
	shape := m.Layers[li].OutShape()         // (C, H', W')
	c, plane := shape[0], shape[1]*shape[2]
	cam := make([]float64, plane)
	for ch := range c {
		var mean float64
		for _, v := range g[ch*plane : (ch+1)*plane] {
			mean += float64(v)
		}
		mean /= float64(plane)
		for p := range plane {
			cam[p] += mean * float64(act[ch*plane+p])
		}
	}
	attr := make([]float32, plane)
	for p, v := range cam {
		attr[p] = float32(max(v, 0))
	}
	return &Explanation{Method: GradCAM, Class: class, Logits: logits, Probs: softmax(logits),
		Attributions: attr, Shape: []int{shape[1], shape[2]}, Target: float64(logits[class]), Layer: m.Layers[li].Name()}, nil
}
