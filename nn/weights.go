package nn

import (
	"fmt"
	"slices"

	"github.com/maas-ml/maas/nn/safetensors"
)

// Weights returns the model's parameters as a safetensors file: one F32
// tensor per named view, in PyTorch's layouts, with the given metadata.
func (m *Model) Weights(metadata map[string]string) *safetensors.File {
	f := &safetensors.File{Metadata: metadata, Tensors: make(map[string]safetensors.Tensor, len(m.Views))}
	for _, v := range m.Views {
		f.Tensors[v.Name] = safetensors.F32(v.Shape, m.Params[v.Offset:v.Offset+v.Size])
	}
	return f
}

// SaveWeights writes the parameters to path (atomically: a temp file, then
// a rename).
func (m *Model) SaveWeights(path string, metadata map[string]string) error {
	return safetensors.WriteFile(path, m.Weights(metadata))
}

// SetWeights copies every parameter from f. Each of the model's tensors
// must be present with its exact shape, and f must hold no others; on any
// mismatch nothing is changed and the error (wrapping ErrWeights) names the
// tensor.
func (m *Model) SetWeights(f *safetensors.File) error {
	vals := make([][]float32, len(m.Views))
	for i, v := range m.Views {
		t, ok := f.Tensors[v.Name]
		if !ok {
			return fmt.Errorf("%w: tensor %q is missing", ErrWeights, v.Name)
		}
		if !slices.Equal(t.Shape, v.Shape) {
			return fmt.Errorf("%w: tensor %q has shape %v, the model needs %v", ErrWeights, v.Name, t.Shape, v.Shape)
		}
		if t.DType != safetensors.DTypeF32 {
			return fmt.Errorf("%w: tensor %q is %s, want F32", ErrWeights, v.Name, t.DType)
		}
		d, err := t.Float32()
		if err != nil {
			return fmt.Errorf("%w: tensor %q: %v", ErrWeights, v.Name, err)
		}
		vals[i] = d
	}
	if len(f.Tensors) != len(m.Views) {
		for _, name := range f.Names() {
			if _, ok := m.View(name); !ok {
				return fmt.Errorf("%w: tensor %q is not a parameter of this model", ErrWeights, name)
			}
		}
	}
	for i, v := range m.Views {
		copy(m.Params[v.Offset:v.Offset+v.Size], vals[i])
	}
	m.WeightsChanged()
	return nil
}

// LoadWeights reads a safetensors file into the model (see SetWeights).
func (m *Model) LoadWeights(path string) error {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return err
	}
	if err := m.SetWeights(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
