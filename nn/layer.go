package nn

import (
	"errors"

	"github.com/maas-ml/maas/tensor"
)

// Errors returned by this package.
var (
	// ErrSpec is wrapped by every error about a model spec that cannot be built.
	ErrSpec = errors.New("nn: invalid model spec")
	// ErrWeights is wrapped when stored weights do not fit a model.
	ErrWeights = errors.New("nn: weights do not match the model")
)

// Layer is one step of a model. Forward and Backward take and return batches
// of n samples laid out as (n, OutShape...) row-major. The slices a layer
// returns are its own buffers, valid until its next Forward or Backward.
type Layer interface {
	// Name is the layer's name, the prefix of its parameters ("conv1").
	Name() string
	// InShape and OutShape are the per-sample shapes, without the batch.
	InShape() []int
	OutShape() []int
	// Params lists the layer's parameters, in flat-vector order.
	Params() []ParamSpec
	// Bind gives the layer its parameters' values and gradients: views into
	// the model's flat vectors, in Params order.
	Bind(values, grads [][]float32)
	// Forward computes the layer's output for x; train selects training
	// behaviour (dropout) and keeps what Backward needs.
	Forward(x []float32, n int, train bool) []float32
	// Backward takes dL/dy for the last Forward batch, adds the parameter
	// gradients into the bound gradient views and returns dL/dx (nil when
	// the layer was built without an input gradient).
	Backward(dy []float32, n int) []float32
}

// ParamSpec describes one parameter tensor of a layer.
type ParamSpec struct {
	Name  string // full name, e.g. "conv1.weight"
	Shape []int
	// Init is how the tensor starts: InitHe, InitGlorot, InitTorch,
	// InitNormal or InitZero.
	Init string
	// FanIn and FanOut feed the initialisers.
	FanIn, FanOut int
}

// layerBase holds what every layer has.
type layerBase struct {
	name          string
	in, out       []int
	be            tensor.Backend
	needInputGrad bool
	// inputGradOnly: Backward computes the input gradient only, not the
	// parameters' (an explainer's model).
	inputGradOnly bool
	// frozen: the model is for inference, so its weights change only
	// through Model.SetWeights and Init, and packed layouts are kept.
	frozen bool
}

// weights is a weight matrix (rows, k) of a layer with the backend's
// packed layout of it (see tensor.Packed).
type weights struct {
	tensor.Packed
	valid bool // Packed holds the current weights' layout
}

func (w *weights) bind(v []float32, rows, k int, left bool) {
	w.Packed = tensor.Packed{W: v, Rows: rows, K: k, Left: left}
	w.valid = false
}

// forUse returns the matrix for a product: in an inference model packed
// once and kept; in a training model unpacked (the kernel packs what it
// reads, as the optimizer changes the weights every step).
func (w *weights) forUse(l *layerBase) *tensor.Packed {
	if l.frozen && !w.valid {
		l.be.Pack(&w.Packed)
		w.valid = true
	}
	return &w.Packed
}

// packNow packs the current weights for the products that follow (the
// time steps of one Forward).
func (w *weights) packNow(be tensor.Backend) *tensor.Packed {
	be.Pack(&w.Packed)
	w.valid = true
	return &w.Packed
}

// packer is a layer whose weights have packed layouts; changed drops them
// after the weights are overwritten.
type packer interface{ changed() }

func (l *layerBase) Name() string          { return l.name }
func (l *layerBase) InShape() []int        { return l.in }
func (l *layerBase) OutShape() []int       { return l.out }
func (l *layerBase) Params() []ParamSpec   { return nil }
func (l *layerBase) Bind(_, _ [][]float32) {}

// grow returns buf resized to n elements, reallocating only when it must.
func grow(buf []float32, n int) []float32 {
	if cap(buf) < n {
		return make([]float32, n)
	}
	return buf[:n]
}

func growInt32(buf []int32, n int) []int32 {
	if cap(buf) < n {
		return make([]int32, n)
	}
	return buf[:n]
}

func prod(shape []int) int { return tensor.NumElements(shape) }
