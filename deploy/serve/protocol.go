package serve

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
)

// The JSON messages of the Open Inference Protocol V2 REST API, as this
// server speaks them. Clients (maas predict, bench/serve) use them too.

// Tensor names of every served model.
const (
	InputName         = "input"
	OutputLogits      = "logits"
	OutputProbability = "probabilities"
	OutputClass       = "class"
)

// Datatypes used.
const (
	DatatypeFP32  = "FP32"
	DatatypeINT64 = "INT64"
)

// Platform is the platform named in model metadata.
const Platform = "maas"

// ParamRawPixels is the input parameter that asks the server to normalise
// pixel values in [0, 255] with the model's training normalisation.
const ParamRawPixels = "raw_pixels"

// The binary tensor data extension (KServe's and Triton's): the body is a
// JSON header of HeaderContentLength bytes, then the tensors' raw
// little-endian data, row-major, in the order of the inputs (or outputs)
// whose parameter ParamBinaryDataSize gives their size in bytes. An output
// is answered so when its request asks ParamBinaryData, or the request
// ParamBinaryDataOutput for all.
const (
	BinaryExtension       = "binary_tensor_data"
	HeaderContentLength   = "Inference-Header-Content-Length"
	ParamBinaryDataSize   = "binary_data_size"
	ParamBinaryData       = "binary_data"
	ParamBinaryDataOutput = "binary_data_output"
)

// ServerMetadata answers GET /v2.
type ServerMetadata struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

// TensorMetadata describes an input or output; -1 in Shape is any size.
type TensorMetadata struct {
	Name     string `json:"name"`
	Datatype string `json:"datatype"`
	Shape    []int  `json:"shape"`
}

// ModelMetadata answers GET /v2/models/{m}[/versions/{v}].
type ModelMetadata struct {
	Name     string           `json:"name"`
	Versions []string         `json:"versions,omitempty"`
	Platform string           `json:"platform"`
	Inputs   []TensorMetadata `json:"inputs"`
	Outputs  []TensorMetadata `json:"outputs"`
}

// ModelReady answers GET /v2/models/{m}[/versions/{v}]/ready.
type ModelReady struct {
	Name  string `json:"name"`
	Ready bool   `json:"ready"`
}

// InferRequest is the body of POST .../infer.
type InferRequest struct {
	ID         string                 `json:"id,omitempty"`
	Parameters map[string]any         `json:"parameters,omitempty"`
	Inputs     []InferInput           `json:"inputs"`
	Outputs    []InferRequestedOutput `json:"outputs,omitempty"`
}

// InferInput is one input tensor of a request. Data holds the values
// flattened row-major, or nested as Shape says.
type InferInput struct {
	Name       string          `json:"name"`
	Shape      []int           `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters map[string]any  `json:"parameters,omitempty"`
	Data       json.RawMessage `json:"data"`
}

// InferRequestedOutput names an output the client wants.
type InferRequestedOutput struct {
	Name       string         `json:"name"`
	Parameters map[string]any `json:"parameters,omitempty"`
}

// InferResponse answers POST .../infer.
type InferResponse struct {
	ModelName    string        `json:"model_name"`
	ModelVersion string        `json:"model_version"`
	ID           string        `json:"id,omitempty"`
	Outputs      []InferOutput `json:"outputs"`
}

// InferOutput is one output tensor; Data holds its values flattened
// row-major as a JSON array (see Float32s and Int64s).
type InferOutput struct {
	Name       string          `json:"name"`
	Shape      []int           `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters map[string]any  `json:"parameters,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
	// Raw is the output's binary data (the binary tensor data
	// extension), filled by DecodeInferResponse.
	Raw []byte `json:"-"`
}

// DecodeInferResponse decodes an answer to .../infer: all JSON when
// headerLen is negative, else (the answer's Inference-Header-Content-Length)
// a JSON header of headerLen bytes followed by the data of the outputs
// with binary_data_size, in order, which go to their Raw.
func DecodeInferResponse(body []byte, headerLen int) (InferResponse, error) {
	var resp InferResponse
	var bin []byte
	if headerLen >= 0 {
		if headerLen > len(body) {
			return resp, fmt.Errorf("serve: %s %d exceeds the answer's %d bytes", HeaderContentLength, headerLen, len(body))
		}
		body, bin = body[:headerLen], body[headerLen:]
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return resp, err
	}
	for i := range resp.Outputs {
		o := &resp.Outputs[i]
		size, ok := o.Parameters[ParamBinaryDataSize].(float64)
		if !ok {
			continue
		}
		if int(size) > len(bin) || size < 0 {
			return resp, fmt.Errorf("serve: output %q: %s %v, but %d bytes are left", o.Name, ParamBinaryDataSize, size, len(bin))
		}
		o.Raw, bin = bin[:int(size)], bin[int(size):]
	}
	if len(bin) > 0 {
		return resp, fmt.Errorf("serve: %d bytes after the outputs' binary data", len(bin))
	}
	return resp, nil
}

// Float32s decodes the data of an FP32 output.
func (o InferOutput) Float32s() ([]float32, error) {
	if o.Raw != nil {
		if len(o.Raw)%4 != 0 {
			return nil, fmt.Errorf("serve: output %q: %d bytes of binary data are not whole FP32 values", o.Name, len(o.Raw))
		}
		v := make([]float32, len(o.Raw)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(o.Raw[4*i:]))
		}
		return v, nil
	}
	var v []float32
	err := json.Unmarshal(o.Data, &v)
	return v, err
}

// Int64s decodes the data of an INT64 output.
func (o InferOutput) Int64s() ([]int64, error) {
	if o.Raw != nil {
		if len(o.Raw)%8 != 0 {
			return nil, fmt.Errorf("serve: output %q: %d bytes of binary data are not whole INT64 values", o.Name, len(o.Raw))
		}
		v := make([]int64, len(o.Raw)/8)
		for i := range v {
			v[i] = int64(binary.LittleEndian.Uint64(o.Raw[8*i:]))
		}
		return v, nil
	}
	var v []int64
	err := json.Unmarshal(o.Data, &v)
	return v, err
}

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error string `json:"error"`
}
