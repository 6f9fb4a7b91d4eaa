package tensor

import (
	"errors"
	"fmt"
)

// ErrShape is returned when a shape is invalid or does not match its data.
var ErrShape = errors.New("tensor: bad shape")

// Tensor is a float32 tensor: a shape and its contiguous row-major data.
type Tensor struct {
	Shape []int
	Data  []float32
}

// New returns a zeroed tensor of the given shape. It panics on a negative
// dimension, like make does; use FromData to check shapes from user input.
func New(shape ...int) *Tensor {
	n := NumElements(shape)
	if n < 0 {
		panic(fmt.Sprintf("tensor: negative dimension in shape %v", shape))
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: make([]float32, n)}
}

// FromData wraps data (not copied) as a tensor of the given shape.
func FromData(data []float32, shape ...int) (*Tensor, error) {
	n := NumElements(shape)
	if n < 0 {
		return nil, fmt.Errorf("%w: negative dimension in %v", ErrShape, shape)
	}
	if n != len(data) {
		return nil, fmt.Errorf("%w: shape %v holds %d elements, data has %d", ErrShape, shape, n, len(data))
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: data}, nil
}

// NumElements returns the product of shape's dimensions (1 for a scalar), or
// -1 if a dimension is negative.
func NumElements(shape []int) int {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return -1
		}
		n *= d
	}
	return n
}

// Len returns the number of elements.
func (t *Tensor) Len() int { return len(t.Data) }

// Reshape changes the shape in place, keeping the data; the element count
// must not change.
func (t *Tensor) Reshape(shape ...int) error {
	if n := NumElements(shape); n != len(t.Data) {
		return fmt.Errorf("%w: cannot reshape %v (%d elements) to %v", ErrShape, t.Shape, len(t.Data), shape)
	}
	t.Shape = append(t.Shape[:0], shape...)
	return nil
}

// Clone returns a deep copy.
func (t *Tensor) Clone() *Tensor {
	return &Tensor{Shape: append([]int(nil), t.Shape...), Data: append([]float32(nil), t.Data...)}
}

// String describes the tensor's shape.
func (t *Tensor) String() string { return fmt.Sprintf("Tensor%v", t.Shape) }
