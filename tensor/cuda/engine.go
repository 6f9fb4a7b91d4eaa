package cuda

import "unsafe"

// engine is what a Backend runs on: device memory, copies, kernel launches
// and GEMMs on one stream. gpu is the real one; hostEngine (OpenHost) is
// a host emulation that runs the same kernels compiled for the CPU, so the
// Backend's code is exercised on machines without a GPU.
//
// Addresses are device addresses (uintptr). Copies and launches are
// queued in order; sync waits for them.
type engine interface {
	// name describes the device, e.g. "NVIDIA H100 80GB HBM3 (cuda:0)".
	name() string
	// enter binds the engine to the calling goroutine's thread until
	// leave; the Backend's mutex is held in between.
	enter() error
	leave()

	alloc(bytes int) (uintptr, error)
	free(p uintptr) error
	// allocHost returns pinned host memory for transfers.
	allocHost(bytes int) (unsafe.Pointer, error)
	freeHost(p unsafe.Pointer) error
	// upload and download copy between pinned host memory and the device.
	upload(dst uintptr, src unsafe.Pointer, bytes int) error
	download(dst unsafe.Pointer, src uintptr, bytes int) error

	// launch runs kernel k over grid×block threads (1-D); params points to
	// an array of pointers to the kernel's arguments, as cuLaunchKernel's.
	launch(k kernel, grid, block uint32, params unsafe.Pointer) error
	// gemm is the row-major C = alpha·op(A)·op(B) + beta·C on device
	// arrays (see tensor.Backend.Gemm), for k > 0.
	gemm(transA, transB bool, m, n, k int, alpha float32, a uintptr, lda int, b uintptr, ldb int, beta float32, c uintptr, ldc int) error
	sync() error

	// Graph capture: work queued between beginCapture and endCapture is
	// recorded, not run; instantiate makes it launchable.
	beginCapture() error
	endCapture() (graph uintptr, err error)
	instantiate(graph uintptr) (exec uintptr, err error)
	launchGraph(exec uintptr) error
	destroyGraph(graph, exec uintptr) error

	close() error
}
