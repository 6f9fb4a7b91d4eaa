package nn

import (
	"fmt"
	"slices"
	"strings"
)

// ModelSpec describes a model: the per-sample input shape and the layers in
// order. It is the `model` section of a job spec.
type ModelSpec struct {
	// Input is the per-sample input shape, e.g. [1, 28, 28] (C, H, W).
	Input  []int       `yaml:"input" json:"input"`
	Layers []LayerSpec `yaml:"layers" json:"layers"`
	// Init chooses the initialisation: "" (He for layers that feed a ReLU,
	// Glorot for the output layer, zero biases) or "torch" (PyTorch's
	// defaults).
	Init string `yaml:"init,omitempty" json:"init,omitempty"`
}

// LayerSpec is one layer of a ModelSpec. Which fields apply depends on Type.
type LayerSpec struct {
	// Type is one of conv2d, maxpool2d, dense, relu, flatten, dropout,
	// lstm, gru, embedding.
	Type string `yaml:"type" json:"type"`
	// Name prefixes the layer's parameters; by default conv1, conv2, …,
	// fc1, fc2, …, pool1, …, lstm1, gru1, embed1, … in order of appearance.
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// Filters is a conv2d's output channels.
	Filters int `yaml:"filters,omitempty" json:"filters,omitempty"`
	// Kernel is the square window of conv2d and maxpool2d.
	Kernel int `yaml:"kernel,omitempty" json:"kernel,omitempty"`
	// Stride defaults to 1 for conv2d and to Kernel for maxpool2d.
	Stride int `yaml:"stride,omitempty" json:"stride,omitempty"`
	// Padding is a conv2d's zero padding on each side.
	Padding int `yaml:"padding,omitempty" json:"padding,omitempty"`
	// Units is a dense layer's output size, an lstm or gru layer's hidden
	// size, an embedding's vector size.
	Units int `yaml:"units,omitempty" json:"units,omitempty"`
	// Rate is a dropout layer's drop probability, in [0, 1).
	Rate float64 `yaml:"rate,omitempty" json:"rate,omitempty"`
	// NumLayers is how many lstm or gru layers are stacked (default 1),
	// PyTorch's num_layers.
	NumLayers int `yaml:"layers,omitempty" json:"layers,omitempty"`
	// ReturnSequences makes an lstm or gru output the top layer's h at every
	// time step, (T, units), instead of only the last one, (units).
	ReturnSequences bool `yaml:"return_sequences,omitempty" json:"return_sequences,omitempty"`
	// Vocab is an embedding's number of tokens.
	Vocab int `yaml:"vocab,omitempty" json:"vocab,omitempty"`
}

// LayerTypes lists the layer types a spec may use.
var LayerTypes = []string{"conv2d", "maxpool2d", "dense", "relu", "flatten", "dropout", "lstm", "gru", "embedding"}

var defaultPrefix = map[string]string{
	"conv2d": "conv", "maxpool2d": "pool", "dense": "fc", "relu": "relu", "flatten": "flatten", "dropout": "dropout",
	"lstm": "lstm", "gru": "gru", "embedding": "embed",
}

// SpecError is an error in a model spec, naming the field at fault, e.g.
// "model.layers[3].kernel".
type SpecError struct {
	Field string
	Msg   string
}

func (e *SpecError) Error() string { return e.Field + ": " + e.Msg }

// Unwrap makes errors.Is(err, ErrSpec) hold.
func (e *SpecError) Unwrap() error { return ErrSpec }

func specErr(field, format string, args ...any) error {
	return &SpecError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

func (s LayerSpec) field(i int, name string) string {
	return fmt.Sprintf("model.layers[%d].%s", i, name)
}

// allowed lists the fields each layer type takes besides type and name.
var allowed = map[string][]string{
	"conv2d": {"filters", "kernel", "stride", "padding"}, "maxpool2d": {"kernel", "stride"},
	"dense": {"units"}, "dropout": {"rate"}, "relu": nil, "flatten": nil,
	"lstm": {"units", "layers", "return_sequences"}, "gru": {"units", "layers", "return_sequences"},
	"embedding": {"vocab", "units"},
}

// check validates the fields of layer i that do not depend on its input.
func (s LayerSpec) check(i int) error {
	if ok, known := allowed[s.Type]; known {
		set := map[string]bool{"filters": s.Filters != 0, "kernel": s.Kernel != 0, "stride": s.Stride != 0,
			"padding": s.Padding != 0, "units": s.Units != 0, "rate": s.Rate != 0,
			"layers": s.NumLayers != 0, "return_sequences": s.ReturnSequences, "vocab": s.Vocab != 0}
		for _, f := range []string{"filters", "kernel", "stride", "padding", "units", "rate", "layers", "return_sequences", "vocab"} {
			if set[f] && !slices.Contains(ok, f) {
				return specErr(s.field(i, f), "does not apply to %s layers", s.Type)
			}
		}
	}
	positive := func(name string, v int) error {
		if v <= 0 {
			return specErr(s.field(i, name), "%s needs %s ≥ 1, got %d", s.Type, name, v)
		}
		return nil
	}
	switch s.Type {
	case "conv2d":
		if err := positive("filters", s.Filters); err != nil {
			return err
		}
		if err := positive("kernel", s.Kernel); err != nil {
			return err
		}
		if s.Stride < 0 {
			return specErr(s.field(i, "stride"), "must not be negative, got %d", s.Stride)
		}
		if s.Padding < 0 {
			return specErr(s.field(i, "padding"), "must not be negative, got %d", s.Padding)
		}
	case "maxpool2d":
		if err := positive("kernel", s.Kernel); err != nil {
			return err
		}
		if s.Stride < 0 {
			return specErr(s.field(i, "stride"), "must not be negative, got %d", s.Stride)
		}
	case "dense":
		return positive("units", s.Units)
	case "dropout":
		if !(s.Rate >= 0 && s.Rate < 1) {
			return specErr(s.field(i, "rate"), "must be in [0, 1), got %g", s.Rate)
		}
	case "lstm", "gru":
		if err := positive("units", s.Units); err != nil {
			return err
		}
		if s.NumLayers < 0 {
			return specErr(s.field(i, "layers"), "must not be negative, got %d", s.NumLayers)
		}
	case "embedding":
		if err := positive("vocab", s.Vocab); err != nil {
			return err
		}
		return positive("units", s.Units)
	case "relu", "flatten":
	case "":
		return specErr(s.field(i, "type"), "missing; one of %s", strings.Join(LayerTypes, ", "))
	default:
		return specErr(s.field(i, "type"), "unknown layer type %q; one of %s", s.Type, strings.Join(LayerTypes, ", "))
	}
	return nil
}

// Validate checks the spec, including that every layer's input shape fits,
// without allocating a model.
func (s ModelSpec) Validate() error {
	_, err := s.shapes()
	return err
}

// shapes walks the layers and returns each layer's (name, input shape).
func (s ModelSpec) shapes() ([]layerPlan, error) {
	if len(s.Input) == 0 {
		return nil, specErr("model.input", "missing; the per-sample input shape, e.g. [1, 28, 28]")
	}
	for _, d := range s.Input {
		if d <= 0 {
			return nil, specErr("model.input", "dimensions must be positive, got %v", s.Input)
		}
	}
	if len(s.Layers) == 0 {
		return nil, specErr("model.layers", "a model needs at least one layer")
	}
	if s.Init != "" && s.Init != InitTorch {
		return nil, specErr("model.init", "unknown initialisation %q; leave it empty or use %q", s.Init, InitTorch)
	}
	plans := make([]layerPlan, 0, len(s.Layers))
	counts := map[string]int{}
	names := map[string]int{}
	shape := slices.Clone(s.Input)
	for i, l := range s.Layers {
		if err := l.check(i); err != nil {
			return nil, err
		}
		counts[l.Type]++
		name := l.Name
		if name == "" {
			name = fmt.Sprintf("%s%d", defaultPrefix[l.Type], counts[l.Type])
		}
		if strings.ContainsAny(name, ". \t\n") {
			return nil, specErr(s.Layers[i].field(i, "name"), "%q must not contain dots or spaces", name)
		}
		if j, dup := names[name]; dup {
			return nil, specErr(s.Layers[i].field(i, "name"), "%q is also the name of layer %d", name, j)
		}
		names[name] = i
		out, err := outShape(l, i, shape)
		if err != nil {
			return nil, err
		}
		plans = append(plans, layerPlan{spec: l, name: name, in: shape, out: out})
		shape = out
	}
	return plans, nil
}

type layerPlan struct {
	spec    LayerSpec
	name    string
	in, out []int
}

// outShape computes layer i's per-sample output shape from its input shape.
func outShape(l LayerSpec, i int, in []int) ([]int, error) {
	field := fmt.Sprintf("model.layers[%d]", i)
	switch l.Type {
	case "conv2d", "maxpool2d":
		if len(in) != 3 {
			return nil, specErr(field, "%s needs a (C, H, W) input, got shape %v", l.Type, in)
		}
		stride := l.Stride
		if stride == 0 {
			stride = 1
			if l.Type == "maxpool2d" {
				stride = l.Kernel
			}
		}
		pad := l.Padding
		if l.Type == "maxpool2d" {
			pad = 0
		}
		h, w := in[1]+2*pad-l.Kernel, in[2]+2*pad-l.Kernel
		if h < 0 || w < 0 {
			return nil, specErr(field+".kernel", "%s window %d does not fit the input %dx%d (padding %d)", l.Type, l.Kernel, in[1], in[2], pad)
		}
		c := in[0]
		if l.Type == "conv2d" {
			c = l.Filters
		}
		return []int{c, h/stride + 1, w/stride + 1}, nil
	case "dense":
		// A (T, F) sequence gets the same weights at every step (PyTorch's
		// Linear on the last dimension); the message keeps to the common case.
		if len(in) != 1 && len(in) != 2 {
			return nil, specErr(field, "dense needs a flat input, got shape %v; add a flatten layer before it", in)
		}
		return append(slices.Clone(in[:len(in)-1]), l.Units), nil
	case "lstm", "gru":
		if len(in) != 2 {
			return nil, specErr(field, "%s needs a (T, F) sequence input, got shape %v", l.Type, in)
		}
		if l.ReturnSequences {
			return []int{in[0], l.Units}, nil
		}
		return []int{l.Units}, nil
	case "embedding":
		if i != 0 || len(in) != 1 {
			return nil, specErr(field, "embedding reads token ids: it must be the first layer, on a (T) input; got layer %d on shape %v", i, in)
		}
		return []int{in[0], l.Units}, nil
	case "flatten":
		return []int{prod(in)}, nil
	default: // relu, dropout
		return slices.Clone(in), nil
	}
}

// OutputShape returns the per-sample output shape of the model spec.
func OutputShape(s ModelSpec) ([]int, error) {
	plans, err := s.shapes()
	if err != nil {
		return nil, err
	}
	return plans[len(plans)-1].out, nil
}
