package cuda

import (
	"errors"
	"fmt"
	"strings"
)

// Errors Open, OpenHost and ParseDevice return, to test for with errors.Is.
var (
	// ErrNoDriver: the NVIDIA driver library (libcuda.so.1) cannot be loaded.
	ErrNoDriver = errors.New("cuda: NVIDIA driver library not found")
	// ErrNoCUBLAS: the cuBLAS library (libcublas.so) cannot be loaded.
	ErrNoCUBLAS = errors.New("cuda: cuBLAS library not found")
	// ErrNoDevice: the driver loaded but sees no GPU, or not the one asked for.
	ErrNoDevice = errors.New("cuda: no such GPU")
	// ErrBadDevice: a --device value that is neither cpu nor cuda[:N].
	ErrBadDevice = errors.New("cuda: bad device name")
	// ErrClosed: the Backend or Buffer was used after Close.
	ErrClosed = errors.New("cuda: closed")
	// ErrUnsupported: the engine cannot do the operation.
	ErrUnsupported = errors.New("cuda: not supported by this engine")
	// ErrNoClang: OpenHost cannot compile the kernels for the host
	// because clang-14 (or $CLANG) is not installed.
	ErrNoClang = errors.New("cuda: host emulation needs clang-14")
)

// LibraryError says which library could not be loaded, where it was
// looked for and how to fix it. It matches ErrNoDriver or ErrNoCUBLAS.
type LibraryError struct {
	Lib      string   // what was looked for: "libcuda.so.1 (the NVIDIA driver)"
	Env      string   // the environment variable that overrides the search
	Searched string   // where it was looked for
	Failed   []string // the files found that did not load, with the loader's reason
	Fix      string   // what to do
	kind     error
}

func (e *LibraryError) Error() string {
	msg := fmt.Sprintf("cuda: cannot load %s: searched %s", e.Lib, e.Searched)
	if len(e.Failed) > 0 {
		msg += "; failed: " + strings.Join(e.Failed, "; ")
	}
	return msg + ". " + e.Fix + ", or set " + e.Env + " to the library's path"
}

func (e *LibraryError) Unwrap() error { return e.kind }

// Error is a CUDA driver call that failed: the call, the CUresult and the
// driver's name and description of it.
type Error struct {
	Op   string // the driver function, e.g. "cuMemAlloc_v2"
	Code int    // the CUresult
	Name string // e.g. "CUDA_ERROR_OUT_OF_MEMORY"
	Desc string // e.g. "out of memory"
}

func (e *Error) Error() string {
	if e.Name == "" {
		return fmt.Sprintf("cuda: %s failed with CUresult %d", e.Op, e.Code)
	}
	return fmt.Sprintf("cuda: %s: %s (%s)", e.Op, e.Name, e.Desc)
}

// Is makes a CUDA_ERROR_NO_DEVICE (100) or CUDA_ERROR_INVALID_DEVICE (101)
// match ErrNoDevice.
func (e *Error) Is(target error) bool {
	return target == ErrNoDevice && (e.Code == 100 || e.Code == 101)
}

// BLASError is a cuBLAS call that failed with a cublasStatus_t.
type BLASError struct {
	Op     string
	Status int
}

var blasStatus = map[int]string{
	1: "CUBLAS_STATUS_NOT_INITIALIZED", 3: "CUBLAS_STATUS_ALLOC_FAILED", 7: "CUBLAS_STATUS_INVALID_VALUE",
	8: "CUBLAS_STATUS_ARCH_MISMATCH", 11: "CUBLAS_STATUS_MAPPING_ERROR", 13: "CUBLAS_STATUS_EXECUTION_FAILED",
	14: "CUBLAS_STATUS_INTERNAL_ERROR", 15: "CUBLAS_STATUS_NOT_SUPPORTED", 16: "CUBLAS_STATUS_LICENSE_ERROR",
}

func (e *BLASError) Error() string {
	if name, ok := blasStatus[e.Status]; ok {
		return fmt.Sprintf("cuda: %s: %s", e.Op, name)
	}
	return fmt.Sprintf("cuda: %s failed with cublasStatus %d", e.Op, e.Status)
}
