// Package cuda is a tensor.Backend on an NVIDIA GPU, for Go binaries built
// without cgo: the NVIDIA driver (libcuda.so.1) and cuBLAS (libcublas.so)
// are opened at run time through purego, so a machine without them still
// runs the binary, and Open reports what is missing.
//
// GEMMs go through cuBLAS (row-major products as column-major ones with
// the operands swapped; TF32 only when Options.AllowTF32). The other
// kernels are CUDA C in kernels/, compiled to PTX by clang-14 (`go
// generate ./tensor/cuda` or `make ptx`) and embedded; the driver compiles
// the PTX for the GPU when the backend opens. They run one thread per
// output, without shared memory or atomics, so the same sources compile
// for the host too.
//
// The Backend's methods take host slices like every tensor.Backend: each
// call copies its inputs to device buffers (allocated once and grown, never
// freed per call, with pinned host mirrors for the transfers), runs its
// kernels on the backend's one stream and copies the outputs back.
//
// Queue is the same stream for work whose data stay on the device: Do
// holds it for a sequence of device and pinned allocations, copies, the
// kernels on device addresses (one typed method each) and GEMMs, and
// captures such a sequence as a CUDA graph (Graph) to replay in one
// launch. The device-resident training step, internal/train/gputrain,
// is built on it.
//
// OpenHost opens the Backend on a host emulation instead of a GPU: the
// kernel sources (embedded) compiled for the CPU by clang-14 into a shared
// object, device memory that is Go memory, the plain GEMM kernel in
// cuBLAS's place and graphs recorded and replayed. Tests run every kernel
// through it, through the Backend's and the Queue's own code, on machines
// without a GPU.
//
// tensor.Backend's methods return no error: a CUDA failure inside one
// (out of device memory, a lost device) panics with the *Error or
// *BLASError that says what failed.
package cuda
