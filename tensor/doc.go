// Package tensor holds maas's float32 tensors and the kernels training and
// inference are made of: GEMM with both transposes, im2col/col2im, bias add,
// ReLU, max-pooling with argmax indices, softmax, reductions, argmax and
// axpy/scale.
//
// Kernels are reached through a Backend. Reference is the naive backend: a
// plain loop per kernel, written to be obviously right, and kept as the oracle
// every other backend is checked against (package tensortest runs the same
// correctness suite on any backend). Go is the pure-Go production backend:
// cache-blocked, packed GEMM and work split across a fixed pool of goroutines.
// Default returns the fastest backend available on this machine.
//
// All kernels work on row-major []float32 slices with explicit dimensions, so
// callers can keep their buffers and run a training step without allocating.
// Shapes are given in comments as (N, C, H, W) and friends.
package tensor
