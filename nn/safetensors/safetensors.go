package safetensors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
)

// MaxHeaderSize is the largest header length, in bytes, that the readers
// accept (100 MB, the limit used by the reference implementation).
const MaxHeaderSize = 100_000_000

// metadataKey is the reserved header key that holds the file's metadata.
const metadataKey = "__metadata__"

// ErrFormat is wrapped by every error reporting a malformed file or an
// invalid tensor. The more specific sentinels below all match ErrFormat with
// errors.Is as well.
var ErrFormat = errors.New("safetensors: bad format")

// Specific causes; each one also matches [ErrFormat] with errors.Is.
var (
	// ErrTruncated: the file is shorter than 8 bytes or than its header
	// length says.
	ErrTruncated error = &formatError{"safetensors: truncated file"}
	// ErrHeaderTooLarge: the header length exceeds MaxHeaderSize.
	ErrHeaderTooLarge error = &formatError{"safetensors: header too large"}
	// ErrHeader: the header is not a valid JSON object of tensor entries
	// (bad JSON, not an object, malformed entry or metadata, trailing data).
	ErrHeader error = &formatError{"safetensors: invalid header"}
	// ErrDType: a dtype is unknown, or a conversion does not support it.
	ErrDType error = &formatError{"safetensors: unsupported dtype"}
	// ErrShape: a negative dimension, or a data length that does not match
	// the shape and dtype.
	ErrShape error = &formatError{"safetensors: shape does not match data"}
	// ErrOffsets: data offsets are malformed, out of the buffer, reversed
	// (begin > end) or overlapping.
	ErrOffsets error = &formatError{"safetensors: invalid data offsets"}
	// ErrCoverage: some bytes of the buffer belong to no tensor.
	ErrCoverage error = &formatError{"safetensors: buffer not fully covered by tensors"}
	// ErrDuplicate: a tensor name appears more than once.
	ErrDuplicate error = &formatError{"safetensors: duplicate tensor name"}
)

// formatError is a sentinel that also matches ErrFormat.
type formatError struct{ msg string }

func (e *formatError) Error() string        { return e.msg }
func (e *formatError) Is(target error) bool { return target == ErrFormat }

// DType is a safetensors element type, such as "F32".
type DType string

// Supported dtypes.
const (
	DTypeF64  DType = "F64"
	DTypeF32  DType = "F32"
	DTypeF16  DType = "F16"
	DTypeBF16 DType = "BF16"
	DTypeI64  DType = "I64"
	DTypeI32  DType = "I32"
	DTypeI16  DType = "I16"
	DTypeI8   DType = "I8"
	DTypeU8   DType = "U8"
	DTypeBOOL DType = "BOOL"
)

// Size returns the number of bytes per element, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case DTypeF64, DTypeI64:
		return 8
	case DTypeF32, DTypeI32:
		return 4
	case DTypeF16, DTypeBF16, DTypeI16:
		return 2
	case DTypeI8, DTypeU8, DTypeBOOL:
		return 1
	}
	return 0
}

// Tensor is one tensor: its dtype, shape and raw little-endian, row-major
// data.
type Tensor struct {
	DType DType
	Shape []int
	Data  []byte
}

// numElements returns the product of shape, and false if a dimension is
// negative or the product overflows an int.
func numElements(shape []int) (int, bool) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, false
		}
	}
	for _, d := range shape {
		if d == 0 {
			return 0, true
		}
	}
	for _, d := range shape {
		if n > math.MaxInt/d {
			return 0, false
		}
		n *= d
	}
	return n, true
}

// NumElements returns the number of elements implied by the shape (1 for a
// scalar with an empty shape). It returns -1 if a dimension is negative or
// the count overflows an int.
func (t Tensor) NumElements() int {
	n, ok := numElements(t.Shape)
	if !ok {
		return -1
	}
	return n
}

// byteLen returns the number of data bytes the shape and dtype require.
func (t Tensor) byteLen() (int, error) {
	size := t.DType.Size()
	if size == 0 {
		return 0, fmt.Errorf("%w %q", ErrDType, string(t.DType))
	}
	n, ok := numElements(t.Shape)
	if !ok || n > math.MaxInt/size {
		return 0, fmt.Errorf("%w: invalid shape %v", ErrShape, t.Shape)
	}
	return n * size, nil
}

// check verifies that the data length matches the shape and dtype and
// returns the element count.
func (t Tensor) check() (int, error) {
	nb, err := t.byteLen()
	if err != nil {
		return 0, err
	}
	if len(t.Data) != nb {
		return 0, fmt.Errorf("%w: %s%v needs %d bytes, have %d", ErrShape, t.DType, t.Shape, nb, len(t.Data))
	}
	return nb / t.DType.Size(), nil
}

// Float32 decodes the data as float32 values. F32 is decoded exactly; F64,
// I64 and I32 are converted (possibly losing precision). Other dtypes, or
// data whose length does not match the shape, return an error.
func (t Tensor) Float32() ([]float32, error) {
	switch t.DType {
	case DTypeF32, DTypeF64, DTypeI64, DTypeI32:
	default:
		return nil, fmt.Errorf("%w: cannot convert %q to float32", ErrDType, string(t.DType))
	}
	n, err := t.check()
	if err != nil {
		return nil, err
	}
	out := make([]float32, n)
	b := t.Data
	le := binary.LittleEndian
	switch t.DType {
	case DTypeF32:
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
	case DTypeF64:
		for i := range out {
			out[i] = float32(math.Float64frombits(le.Uint64(b[8*i:])))
		}
	case DTypeI64:
		for i := range out {
			out[i] = float32(int64(le.Uint64(b[8*i:])))
		}
	case DTypeI32:
		for i := range out {
			out[i] = float32(int32(le.Uint32(b[4*i:])))
		}
	}
	return out, nil
}

// Int64 decodes I64 or I32 data as int64 values. Other dtypes, or data whose
// length does not match the shape, return an error.
func (t Tensor) Int64() ([]int64, error) {
	switch t.DType {
	case DTypeI64, DTypeI32:
	default:
		return nil, fmt.Errorf("%w: cannot convert %q to int64", ErrDType, string(t.DType))
	}
	n, err := t.check()
	if err != nil {
		return nil, err
	}
	out := make([]int64, n)
	le := binary.LittleEndian
	if t.DType == DTypeI64 {
		for i := range out {
			out[i] = int64(le.Uint64(t.Data[8*i:]))
		}
	} else {
		for i := range out {
			out[i] = int64(int32(le.Uint32(t.Data[4*i:])))
		}
	}
	return out, nil
}

// F32 builds an F32 tensor with the given shape, copying data into
// little-endian bytes. The shape is copied too. F32 does not check that
// len(data) matches the shape; Encode does.
func F32(shape []int, data []float32) Tensor {
	b := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return Tensor{DType: DTypeF32, Shape: append([]int{}, shape...), Data: b}
}

// File is the content of a safetensors file.
type File struct {
	Metadata map[string]string
	Tensors  map[string]Tensor
}

// Names returns the tensor names in sorted order.
func (f *File) Names() []string {
	if f == nil {
		return nil
	}
	names := make([]string, 0, len(f.Tensors))
	for name := range f.Tensors {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
