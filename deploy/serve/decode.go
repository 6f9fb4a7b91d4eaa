package serve

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
)

// outputSet says which outputs a request asked for.
type outputSet struct{ logits, probs, class bool }

var allOutputs = outputSet{true, true, true}

// decoded is an inference request checked against a model version: n
// samples x (n, C, H, W).
type decoded struct {
	id      string
	x       []float32
	n       int
	outputs outputSet
	// binary are the outputs to answer as binary data (the binary tensor
	// data extension).
	binary outputSet
}

// noHeaderLength is headerLen when a request is all JSON.
const noHeaderLength = -1

// rawInput is one input tensor as read, before it is checked.
type rawInput struct {
	name, datatype string
	shape          []int
	params         map[string]any
	x              []float32
	dims           []int // the nesting of the data
	hasData        bool
}

// decodeInfer parses and checks an inference request body for v.
//
// With the binary tensor data extension, the JSON is the first headerLen
// bytes of body (Inference-Header-Content-Length) and an input with the
// parameter binary_data_size takes that many bytes of what follows, in the
// order of the inputs; noHeaderLength: all of body is JSON.
func decodeInfer(body []byte, headerLen int, v *version) (decoded, error) {
	var d decoded
	var inputs []rawInput
	var outs []InferRequestedOutput
	var params map[string]any
	var bin []byte
	if headerLen != noHeaderLength {
		if headerLen < 0 || headerLen > len(body) {
			return d, badRequest("%s %d: the body has %d bytes", HeaderContentLength, headerLen, len(body))
		}
		body, bin = body[:headerLen], body[headerLen:]
	}
	w := jsonWalker{b: body}
	err := w.object(func(key string) error {
		switch key {
		case "id":
			return w.decode("id", &d.id)
		case "inputs":
			if w.peek() != '[' {
				return badRequest(`field "inputs": expected an array of tensors`)
			}
			return w.array(func(i int) error {
				in, err := readInput(&w, i, v)
				inputs = append(inputs, in)
				return err
			})
		case "outputs":
			return w.decode("outputs", &outs)
		case "parameters":
			return w.decode("parameters", &params)
		}
		return w.skip(0) // fields this server does not know
	})
	if err == nil {
		err = w.end()
	}
	if err != nil {
		return d, err
	}
	allBinary, err := boolParam(params, ParamBinaryDataOutput)
	if err != nil {
		return d, badRequest("%v", err)
	}
	if d.outputs, d.binary, err = requestedOutputs(outs, allBinary); err != nil {
		return d, err
	}
	for i := range inputs {
		if bin, err = inputs[i].takeBinary(bin, headerLen != noHeaderLength); err != nil {
			return d, err
		}
	}
	if len(bin) > 0 {
		return d, badRequest("%d bytes after the JSON header and the inputs' binary data (binary_data_size); they must add up to the body", len(bin))
	}
	switch len(inputs) {
	case 0:
		return d, badRequest(`no inputs; send one input named %q`, InputName)
	case 1:
	default:
		for _, in := range inputs {
			if in.name != InputName {
				return d, inputErr(in.name, "unknown; the model has one input, %q", InputName)
			}
		}
		return d, inputErr(InputName, "given %d times; send it once", len(inputs))
	}
	d.x, d.n, err = v.checkInput(&inputs[0])
	return d, err
}

// readInput reads the input tensor object that comes next; its data goes
// straight into float32s, at most a full batch of them.
func readInput(w *jsonWalker, index int, v *version) (rawInput, error) {
	var in rawInput
	err := w.object(func(key string) error {
		switch key {
		case "name":
			return w.decode("name", &in.name)
		case "datatype":
			return w.decode("datatype", &in.datatype)
		case "shape":
			return w.decode("shape", &in.shape)
		case "parameters":
			return w.decode("parameters", &in.params)
		case "data":
			if w.peek() == 'n' { // null
				in.hasData = false
				return w.skip(0)
			}
			limit := v.maxBatch * v.sampleSize
			if n, ok := shapeLen(in.shape); ok && n <= limit {
				limit = n // the shape came first, as it usually does
			}
			var err error
			in.x, in.dims, w.i, err = parseFloatsAt(w.b, w.i, make([]float32, 0, min(limit, 1<<16)), limit)
			if err != nil {
				name := in.name
				if name == "" {
					name = fmt.Sprintf("inputs[%d]", index)
				}
				return inputErr(name, "%v", err)
			}
			in.hasData = true
			return nil
		}
		return w.skip(0)
	})
	return in, err
}

// shapeLen is the number of values a shape holds, if it is positive and
// small enough to compute.
func shapeLen(shape []int) (int, bool) {
	if len(shape) == 0 {
		return 0, false
	}
	n := 1
	for _, d := range shape {
		if d <= 0 || n > math.MaxInt32/d {
			return 0, false
		}
		n *= d
	}
	return n, true
}

// requestedOutputs returns the outputs named, all of them when none are,
// and those to answer as binary data: each that asks for it
// (binary_data), or all with allBinary (binary_data_output).
func requestedOutputs(outs []InferRequestedOutput, allBinary bool) (s, bin outputSet, err error) {
	if len(outs) == 0 {
		if allBinary {
			return allOutputs, allOutputs, nil
		}
		return allOutputs, outputSet{}, nil
	}
	for _, o := range outs {
		b, err := boolParam(o.Parameters, ParamBinaryData)
		if err != nil {
			return s, bin, outputErr(o.Name, "%v", err)
		}
		b = b || allBinary
		switch o.Name {
		case OutputLogits:
			s.logits, bin.logits = true, b
		case OutputProbability:
			s.probs, bin.probs = true, b
		case OutputClass:
			s.class, bin.class = true, b
		default:
			return s, bin, outputErr(o.Name, "unknown; one of %s, %s, %s", OutputLogits, OutputProbability, OutputClass)
		}
	}
	return s, bin, nil
}

// takeBinary gives an input with binary_data_size its data from the front
// of bin (little-endian FP32) and returns the rest; extension: the request
// has a JSON header length.
func (in *rawInput) takeBinary(bin []byte, extension bool) ([]byte, error) {
	p, ok := in.params[ParamBinaryDataSize]
	if !ok {
		return bin, nil
	}
	f, isNum := p.(float64)
	size := int(f)
	switch {
	case !isNum || f != float64(size) || size < 0:
		return bin, inputErr(in.name, "parameter %s: %v is not a byte count", ParamBinaryDataSize, p)
	case !extension:
		return bin, inputErr(in.name, "parameter %s without the header %s: binary data follows a JSON header of that length", ParamBinaryDataSize, HeaderContentLength)
	case in.hasData:
		return bin, inputErr(in.name, `both "data" and %s: give one`, ParamBinaryDataSize)
	case size > len(bin):
		return bin, inputErr(in.name, "%s %d, but %d bytes of binary data follow the JSON header: truncated", ParamBinaryDataSize, size, len(bin))
	case size%4 != 0:
		return bin, inputErr(in.name, "%s %d is not a whole number of %s values (4 bytes each)", ParamBinaryDataSize, size, DatatypeFP32)
	}
	if want, ok := shapeLen(in.shape); ok && want*4 != size {
		return bin, inputErr(in.name, "%s %d bytes for shape %s: expected %d (%d %s values)", ParamBinaryDataSize, size, fmtShape(in.shape), 4*want, want, DatatypeFP32)
	}
	in.x = make([]float32, size/4)
	for i := range in.x {
		in.x[i] = math.Float32frombits(binary.LittleEndian.Uint32(bin[4*i:]))
	}
	in.hasData, in.dims = true, nil
	return bin[size:], nil
}

// boolParam reads a true-or-false parameter (false when absent).
func boolParam(params map[string]any, name string) (bool, error) {
	p, ok := params[name]
	if !ok {
		return false, nil
	}
	b, ok := p.(bool)
	if !ok {
		return false, fmt.Errorf("parameter %s: %v is not true or false", name, p)
	}
	return b, nil
}

// checkInput checks an input's name, datatype, shape and data against the
// model and returns its values (normalised when raw_pixels is set) and
// the number of samples.
func (v *version) checkInput(in *rawInput) ([]float32, int, error) {
	if in.name != InputName {
		return nil, 0, inputErr(in.name, "unknown; the model has one input, %q", InputName)
	}
	if in.datatype != DatatypeFP32 {
		return nil, 0, inputErr(in.name, "datatype %q: expected %s", in.datatype, DatatypeFP32)
	}
	n, err := v.checkShape(in.shape)
	if err != nil {
		return nil, 0, inputErr(in.name, "%v", err)
	}
	raw, err := rawPixels(in.params)
	if err != nil {
		return nil, 0, inputErr(in.name, "%v", err)
	}
	want := n * v.sampleSize
	if !in.hasData {
		return nil, 0, inputErr(in.name, "no data; give %d values", want)
	}
	x := in.x
	switch {
	case len(in.dims) <= 1:
		if len(x) != want {
			return nil, 0, inputErr(in.name, "%d values for shape %s: expected %d", len(x), fmtShape(in.shape), want)
		}
	case !slices.Equal(in.dims, in.shape):
		return nil, 0, inputErr(in.name, "data nested as %s but the shape is %s", fmtShape(in.dims), fmtShape(in.shape))
	}
	if raw {
		if i, ok := v.norm.apply(x); !ok {
			return nil, 0, inputErr(in.name, "%s: value %v at index %d is outside [0, 255]", ParamRawPixels, x[i], i)
		}
	}
	return x, n, nil
}

// checkShape accepts [N, in...] (the model's per-sample input shape, e.g.
// [N, C, H, W]) and [N, values per sample], with N from 1 to the model's
// max batch size, and returns N.
func (v *version) checkShape(shape []int) (int, error) {
	ok := len(shape) == 1+len(v.inShape) && slices.Equal(shape[1:], v.inShape) ||
		len(shape) == 2 && shape[1] == v.sampleSize
	if !ok || shape[0] < 1 {
		return 0, fmt.Errorf("shape %s: expected %s or [N, %d] with N ≥ 1", fmtShape(shape), v.batchShape(), v.sampleSize)
	}
	if shape[0] > v.maxBatch {
		return 0, fmt.Errorf("shape %s: a batch of %d samples exceeds the model's max_batch_size %d; split it", fmtShape(shape), shape[0], v.maxBatch)
	}
	return shape[0], nil
}

// batchShape prints the model's batch input shape: [N, 1, 28, 28].
func (v *version) batchShape() string {
	s := "[N"
	for _, d := range v.inShape {
		s += fmt.Sprintf(", %d", d)
	}
	return s + "]"
}

// rawPixels reads the raw_pixels parameter.
func rawPixels(params map[string]any) (bool, error) { return boolParam(params, ParamRawPixels) }

// fmtShape prints a shape as JSON does: [1, 28, 28].
func fmtShape(s []int) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
