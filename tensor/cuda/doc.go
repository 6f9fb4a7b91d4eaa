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
// for the host too: the tests build them into a shared object and run
// every kernel, through the Backend's own code, against tensor.Reference
// on machines without a GPU (see hostengine_test.go).
//
// The Backend's methods take host slices like every tensor.Backend: each
// call copies its inputs to device buffers (allocated once and grown, never
// freed per call, with pinned host mirrors for the transfers), runs its
// kernels on the backend's one stream and copies the outputs back.
//
// Trainer is the device-resident training step built on the same kernels:
// a model's parameters, gradients, activations and optimizer state in one
// device allocation made once, a step queued on the one stream without a
// host round trip inside it, captured as a CUDA graph (Graph) when its
// batch size repeats and replayed after. Its layers are package nn's
// (conv2d, relu, maxpool2d, flatten, dense, lstm, gru), and the tests run
// it on the host emulation against nn (trainer_test.go).
//
// tensor.Backend's methods return no error: a CUDA failure inside one
// (out of device memory, a lost device) panics with the *Error or
// *BLASError that says what failed.
package cuda
