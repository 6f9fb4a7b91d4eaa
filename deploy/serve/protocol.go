package serve

import "encoding/json"

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
	Name     string          `json:"name"`
	Shape    []int           `json:"shape"`
	Datatype string          `json:"datatype"`
	Data     json.RawMessage `json:"data"`
}

// Float32s decodes the data of an FP32 output.
func (o InferOutput) Float32s() ([]float32, error) {
	var v []float32
	err := json.Unmarshal(o.Data, &v)
	return v, err
}

// Int64s decodes the data of an INT64 output.
func (o InferOutput) Int64s() ([]int64, error) {
	var v []int64
	err := json.Unmarshal(o.Data, &v)
	return v, err
}

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error string `json:"error"`
}
