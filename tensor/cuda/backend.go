package cuda

import (
	"errors"
	"runtime"
	"sync"
	"unsafe"

	"github.com/maas-ml/maas/tensor"
)

// Options configure Open.
type Options struct {
	// AllowTF32 lets cuBLAS round GEMM inputs to TF32 on tensor cores
	// (Ampere and later): faster, with about 3 decimal digits per product
	// instead of fp32's 7. Off, GEMMs are full fp32, as on the CPU.
	AllowTF32 bool
}

// Backend is a tensor.Backend on one GPU. Its methods take and return host
// slices (see the package comment); they hold a mutex for the whole call,
// so concurrent callers share the one stream in turn.
type Backend struct {
	mu     sync.Mutex // guards everything below: the stream's order, the buffers, args and err
	eng    engine
	bufs   [numSlots]Buffer
	args   *launchArgs
	pin    runtime.Pinner // keeps args where the driver reads it
	parts  []float64      // reduction partial sums, copied back
	err    error          // the first failure of the current call
	queue  Queue          // what Do hands out
	closed bool
}

var _ tensor.Backend = (*Backend)(nil)

var errTooLarge = errors.New("cuda: a call over 2^31 elements; split the batch")

// slot names the Backend's cached buffers by their role in a call.
type slot int

const (
	sA     slot = iota // first input
	sB                 // second input
	sC                 // third input, or the output
	sD                 // fourth input, or a second output
	sE                 // fifth input, or a third output
	sCol               // an im2col matrix
	sTmp               // a GEMM result before its epilogue
	sParts             // reduction partial sums (float64)
	numSlots
)

// Open opens the GPU named by device ("cuda" or "cuda:N"): it loads the
// NVIDIA driver and cuBLAS, and compiles the kernels for the GPU. Without
// a driver, a GPU or cuBLAS the error says which, where it was looked for
// and what to do (errors.Is ErrNoDriver, ErrNoDevice, ErrNoCUBLAS).
func Open(device string, opts Options) (*Backend, error) {
	ordinal, err := ParseDevice(device)
	if err != nil {
		return nil, err
	}
	g, err := openGPU(ordinal, opts.AllowTF32)
	if err != nil {
		return nil, err
	}
	return newBackend(g), nil
}

func newBackend(e engine) *Backend {
	b := &Backend{eng: e, args: new(launchArgs)}
	b.queue.b = b
	b.pin.Pin(b.args)
	return b
}

// Name returns "cuda".
func (b *Backend) Name() string { return "cuda" }

// Device describes the GPU, e.g. "NVIDIA H100 80GB HBM3 (cuda:0)".
func (b *Backend) Device() string { return b.eng.name() }

// Threads returns 1: the parallelism is the GPU's.
func (b *Backend) Threads() int { return 1 }

// Close frees the device memory and releases the GPU. The Backend must not
// be used after.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	err := b.eng.enter()
	if err == nil {
		err = b.eng.sync()
	}
	for i := range b.bufs {
		if e := b.bufs[i].release(b.eng); err == nil {
			err = e
		}
	}
	if e := b.eng.close(); err == nil {
		err = e
	}
	b.eng.leave()
	b.pin.Unpin()
	return err
}

// enter starts a call: it takes the mutex and binds the engine to this
// thread. Every enter is paired with a deferred leave.
func (b *Backend) enter() {
	b.mu.Lock()
	if b.closed {
		b.err = ErrClosed
		return
	}
	b.err = b.eng.enter()
}

// leave ends a call; the call's first failure panics (tensor.Backend's
// methods have no error result).
func (b *Backend) leave() {
	if !b.closed {
		b.eng.leave()
	}
	err := b.err
	b.err = nil
	b.mu.Unlock()
	if err != nil {
		panic(err)
	}
}

// fail records the call's first error.
func (b *Backend) fail(err error) {
	if b.err == nil && err != nil {
		b.err = err
	}
}

// up copies x to slot s and returns its device address.
func (b *Backend) up(s slot, x []float32) uintptr {
	if b.err != nil || len(x) == 0 {
		return 0
	}
	b.fail(b.bufs[s].upload(b.eng, unsafe.Pointer(&x[0]), 4*len(x)))
	return b.bufs[s].ptr
}

// upInt is up for int32 slices.
func (b *Backend) upInt(s slot, x []int32) uintptr {
	if b.err != nil || len(x) == 0 {
		return 0
	}
	b.fail(b.bufs[s].upload(b.eng, unsafe.Pointer(&x[0]), 4*len(x)))
	return b.bufs[s].ptr
}

// scratch returns slot s grown to hold bytes, contents undefined.
func (b *Backend) scratch(s slot, bytes int) uintptr {
	if b.err != nil {
		return 0
	}
	b.fail(b.bufs[s].grow(b.eng, max(bytes, 4)))
	return b.bufs[s].ptr
}

// down waits for the queued work and copies slot s into dst.
func (b *Backend) down(dst []float32, s slot) {
	if b.err != nil || len(dst) == 0 {
		return
	}
	b.fail(b.bufs[s].download(b.eng, unsafe.Pointer(&dst[0]), 4*len(dst)))
}

// downInt is down for int32 slices.
func (b *Backend) downInt(dst []int32, s slot) {
	if b.err != nil || len(dst) == 0 {
		return
	}
	b.fail(b.bufs[s].download(b.eng, unsafe.Pointer(&dst[0]), 4*len(dst)))
}

// run launches kernel k over threads threads with the given arguments
// (encoded by i32, f32, ptr and flag).
func (b *Backend) run(k kernel, threads int, args ...uint64) {
	b.launch(k, threads, nil, args)
}

// runGeom is run for kernels whose first parameter is a geometry struct.
func (b *Backend) runGeom(k kernel, threads int, geom [12]int32, args ...uint64) {
	b.launch(k, threads, &geom, args)
}

func (b *Backend) launch(k kernel, threads int, geom *[12]int32, args []uint64) {
	if b.err != nil || threads == 0 {
		return
	}
	if threads > maxElems {
		b.fail(errTooLarge)
		return
	}
	a, n := b.args, 0
	if geom != nil {
		a.geom = *geom
		a.ptrs[0] = unsafe.Pointer(&a.geom)
		n = 1
	}
	for i, v := range args {
		a.vals[i] = v
		a.ptrs[n] = unsafe.Pointer(&a.vals[i])
		n++
	}
	b.fail(b.eng.launch(k, gridFor(threads), blockSize, unsafe.Pointer(&a.ptrs[0])))
}

// gemm queues the row-major product on device arrays; k = 0 (C = beta·C)
// goes to the plain kernel, which cuBLAS's argument checks may refuse.
func (b *Backend) gemm(transA, transB bool, m, n, k int, alpha float32, a uintptr, lda int, bm uintptr, ldb int, beta float32, c uintptr, ldc int) {
	if b.err != nil || m == 0 || n == 0 {
		return
	}
	if k == 0 {
		b.run(kGemm, m*n, flag(transA), flag(transB), i32(m), i32(n), i32(k), f32(alpha), ptr(a), i32(lda), ptr(bm), i32(ldb), f32(beta), ptr(c), i32(ldc))
		return
	}
	b.fail(b.eng.gemm(transA, transB, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc))
}

// span is the length of a row-major (rows, cols) array with row stride ld.
func span(rows, cols, ld int) int {
	if rows == 0 || cols == 0 {
		return 0
	}
	return (rows-1)*ld + cols
}
