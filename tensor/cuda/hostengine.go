package cuda

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// hostEngine is a real, in-memory engine for tests (OpenHost): the kernels
// of kernels/*.cu compiled for the CPU by clang-14 into a shared object, run
// one emulated thread at a time (see maas_cuda.h), on "device memory"
// that is Go memory. GEMMs run the plain maas_gemm kernel in cuBLAS's
// place. It checks the kernels' index math and the Backend's code on
// machines without a GPU.
//
// Graphs are emulated: between beginCapture and endCapture, launches,
// GEMMs and copies are recorded instead of run (a launch's arguments are
// copied when recorded, as cuLaunchKernel does; a copy reads its pinned
// memory when replayed, as a captured memcpy does), a sync fails as it
// does on a capturing stream, and launchGraph runs the recording.
type hostEngine struct {
	fns  [numKernels]func(gx, gy, gz, bx, by, bz uint32, params unsafe.Pointer)
	mu   sync.Mutex           // guards mem and the counters
	mem  map[uintptr][]uint64 // live allocations, kept reachable
	args launchArgs           // for gemm's launches; used under the Backend's mutex

	// allocs and hostAllocs count alloc and allocHost calls; captures and
	// replays count endCapture and launchGraph.
	allocs, hostAllocs, captures, replays int

	// The graph being captured (nil when not capturing) and the captured
	// ones by handle; used under the Backend's mutex.
	rec    *hostGraph
	graphs map[uintptr]*hostGraph
	nextID uintptr
}

// hostGraph is a recorded graph: its work in order, and the argument
// blocks its launches read, pinned while the graph lives.
type hostGraph struct {
	work []func() error
	pin  runtime.Pinner
}

var _ engine = (*hostEngine)(nil)

// The kernel sources, compiled for the host by OpenHost.
//
//go:embed kernels/*.cu kernels/*.h kernels/*.cc
var kernelSources embed.FS

var (
	hostLibOnce sync.Once
	hostLib     uintptr
	hostLibErr  error
)

// buildHostKernels compiles the kernel sources for the host and loads the
// result (once per process). It returns ErrNoClang when clang-14 is
// missing.
func buildHostKernels() (uintptr, error) {
	hostLibOnce.Do(func() { hostLib, hostLibErr = compileHostKernels() })
	return hostLib, hostLibErr
}

func compileHostKernels() (uintptr, error) {
	clang := os.Getenv("CLANG")
	if clang == "" {
		clang = "clang-14"
	}
	if _, err := exec.LookPath(clang); err != nil {
		return 0, fmt.Errorf("%w (%s not on PATH: apt-get install clang-14)", ErrNoClang, clang)
	}
	dir, err := os.MkdirTemp("", "maas-cuda-host-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir) // the loaded object stays mapped
	if err := os.CopyFS(dir, kernelSources); err != nil {
		return 0, fmt.Errorf("writing the kernel sources: %w", err)
	}
	srcs, err := fs.Glob(kernelSources, "kernels/*.cu")
	if err != nil {
		return 0, err
	}
	so := filepath.Join(dir, "kernels.so")
	args := []string{"-x", "c++", "-std=c++17", "-O2", "-fPIC", "-shared", "-ffp-contract=off", "-DMAAS_HOST", "-Wall", "-Werror"}
	args = append(args, srcs...)
	args = append(args, "kernels/host_launch.cc", "-lm", "-o", so)
	cmd := exec.Command(clang, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("compiling the kernels for the host: %v\n%s", err, out)
	}
	return purego.Dlopen(so, purego.RTLD_NOW|purego.RTLD_LOCAL)
}

// OpenHost returns a Backend on the host emulation, for tests on machines
// without a GPU: the kernels of kernels/*.cu (embedded) compiled for the
// CPU by clang-14 (or $CLANG) into a shared object, once per process, and
// run one emulated thread at a time on "device memory" that is Go memory,
// with the plain maas_gemm kernel in cuBLAS's place and CUDA graphs
// recorded and replayed. Without clang the error wraps ErrNoClang, so a
// test can skip. Close fails when device or pinned memory is left
// allocated; HostCounts reads the allocation and graph counters.
func OpenHost() (*Backend, error) {
	lib, err := buildHostKernels()
	if err != nil {
		return nil, err
	}
	e := &hostEngine{mem: map[uintptr][]uint64{}, graphs: map[uintptr]*hostGraph{}}
	for k, kd := range kernels {
		purego.RegisterLibFunc(&e.fns[k], lib, kd.symbol+"_host")
	}
	return newBackend(e), nil
}

// HostCounts are the host emulation's counters since OpenHost.
type HostCounts struct {
	Allocs     int // device allocations (Queue.Alloc, the Backend's buffers)
	HostAllocs int // pinned host allocations
	Captures   int // graphs captured
	Replays    int // graph launches
}

// HostCounts returns the host emulation's counters, and false for a
// Backend on a GPU.
func (b *Backend) HostCounts() (HostCounts, bool) {
	e, ok := b.eng.(*hostEngine)
	if !ok {
		return HostCounts{}, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return HostCounts{Allocs: e.allocs, HostAllocs: e.hostAllocs, Captures: e.captures, Replays: e.replays}, true
}

func (e *hostEngine) name() string { return "host emulation" }
func (e *hostEngine) enter() error { return nil }
func (e *hostEngine) leave()       {}
func (e *hostEngine) sync() error {
	if e.rec != nil {
		return errors.New("host engine: sync during a capture (cudaErrorStreamCaptureUnsupported on a GPU)")
	}
	return nil
}
func (e *hostEngine) free(p uintptr) error { return e.release(p) }

// close fails when memory is left allocated: the Backend frees its own
// buffers before, so what is left leaked.
func (e *hostEngine) close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if n := len(e.mem); n != 0 {
		return fmt.Errorf("host engine: %d allocations not freed at Close", n)
	}
	return nil
}

func (e *hostEngine) alloc(bytes int) (uintptr, error) {
	e.mu.Lock()
	e.allocs++
	e.mu.Unlock()
	p := e.allocGo(bytes)
	return uintptr(p), nil
}

// allocGo returns 8-byte aligned Go memory, like device memory,
// filled with NaNs so that reads of unwritten memory show.
func (e *hostEngine) allocGo(bytes int) unsafe.Pointer {
	m := make([]uint64, (bytes+7)/8)
	for i := range m {
		m[i] = 0x7fc00000_7fc00000
	}
	p := unsafe.Pointer(&m[0])
	e.mu.Lock()
	e.mem[uintptr(p)] = m
	e.mu.Unlock()
	return p
}

func (e *hostEngine) release(p uintptr) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.mem[p]; !ok {
		return fmt.Errorf("host engine: free of %#x, not allocated", p)
	}
	delete(e.mem, p)
	return nil
}

func (e *hostEngine) allocHost(bytes int) (unsafe.Pointer, error) {
	e.mu.Lock()
	e.hostAllocs++
	e.mu.Unlock()
	return e.allocGo(bytes), nil
}

func (e *hostEngine) freeHost(p unsafe.Pointer) error { return e.release(uintptr(p)) }

// memory returns the allocation holding [p, p+bytes), or an error: the
// emulation checks every copy's bounds.
func (e *hostEngine) memory(p uintptr, bytes int) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for base, m := range e.mem {
		if p >= base && p+uintptr(bytes) <= base+uintptr(8*len(m)) {
			return unsafe.Slice((*byte)(unsafe.Pointer(&m[0])), 8*len(m))[p-base:][:bytes], nil
		}
	}
	return nil, fmt.Errorf("host engine: copy of %d bytes at %#x outside every allocation", bytes, p)
}

func (e *hostEngine) upload(dst uintptr, src unsafe.Pointer, bytes int) error {
	if e.rec != nil {
		e.rec.work = append(e.rec.work, func() error { return e.uploadNow(dst, src, bytes) })
		return nil
	}
	return e.uploadNow(dst, src, bytes)
}

func (e *hostEngine) uploadNow(dst uintptr, src unsafe.Pointer, bytes int) error {
	d, err := e.memory(dst, bytes)
	if err != nil {
		return err
	}
	copy(d, unsafe.Slice((*byte)(src), bytes))
	return nil
}

func (e *hostEngine) download(dst unsafe.Pointer, src uintptr, bytes int) error {
	if e.rec != nil {
		e.rec.work = append(e.rec.work, func() error { return e.downloadNow(dst, src, bytes) })
		return nil
	}
	return e.downloadNow(dst, src, bytes)
}

func (e *hostEngine) downloadNow(dst unsafe.Pointer, src uintptr, bytes int) error {
	s, err := e.memory(src, bytes)
	if err != nil {
		return err
	}
	copy(unsafe.Slice((*byte)(dst), bytes), s)
	return nil
}

func (e *hostEngine) launch(k kernel, grid, block uint32, params unsafe.Pointer) error {
	if e.rec != nil {
		args := snapshotArgs(params)
		e.rec.pin.Pin(args)
		e.rec.work = append(e.rec.work, func() error { return e.launch(k, grid, block, unsafe.Pointer(&args.ptrs[0])) })
		return nil
	}
	e.fns[k](grid, 1, 1, block, 1, 1, params)
	return nil
}

// snapshotArgs copies the launchArgs block params points into (the
// Backend's, or the engine's own for gemm): its values and pointers to
// them, re-aimed at the copy.
func snapshotArgs(params unsafe.Pointer) *launchArgs {
	base := unsafe.Add(params, -int(unsafe.Offsetof(launchArgs{}.ptrs)))
	src, dst := (*launchArgs)(base), new(launchArgs)
	dst.vals, dst.geom = src.vals, src.geom
	lo, size := uintptr(base), unsafe.Sizeof(launchArgs{})
	for i, p := range src.ptrs {
		if off := uintptr(p) - lo; uintptr(p) >= lo && off < size {
			dst.ptrs[i] = unsafe.Add(unsafe.Pointer(dst), off)
		}
	}
	return dst
}

func (e *hostEngine) gemm(transA, transB bool, m, n, k int, alpha float32, a uintptr, lda int, b uintptr, ldb int, beta float32, c uintptr, ldc int) error {
	if e.rec != nil {
		e.rec.work = append(e.rec.work, func() error {
			rec := e.rec
			e.rec = nil // run it, not record it again
			defer func() { e.rec = rec }()
			return e.gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		})
		return nil
	}
	vals := []uint64{flag(transA), flag(transB), i32(m), i32(n), i32(k), f32(alpha), ptr(a), i32(lda), ptr(b), i32(ldb), f32(beta), ptr(c), i32(ldc)}
	for i, v := range vals {
		e.args.vals[i] = v
		e.args.ptrs[i] = unsafe.Pointer(&e.args.vals[i])
	}
	return e.launch(kGemm, gridFor(m*n), blockSize, unsafe.Pointer(&e.args.ptrs[0]))
}

func (e *hostEngine) beginCapture() error {
	if e.rec != nil {
		return errors.New("host engine: capture already under way")
	}
	e.rec = new(hostGraph)
	return nil
}

func (e *hostEngine) endCapture() (uintptr, error) {
	if e.rec == nil {
		return 0, errors.New("host engine: endCapture without beginCapture")
	}
	e.nextID++
	e.graphs[e.nextID], e.rec = e.rec, nil
	e.mu.Lock()
	e.captures++
	e.mu.Unlock()
	return e.nextID, nil
}

// instantiate makes the graph its own executable: replays run its work.
func (e *hostEngine) instantiate(graph uintptr) (uintptr, error) {
	if e.graphs[graph] == nil {
		return 0, fmt.Errorf("host engine: instantiate of unknown graph %d", graph)
	}
	return graph, nil
}

func (e *hostEngine) launchGraph(exec uintptr) error {
	g := e.graphs[exec]
	if g == nil {
		return fmt.Errorf("host engine: launch of unknown graph %d", exec)
	}
	if e.rec != nil {
		return errors.New("host engine: graph launch during a capture")
	}
	e.mu.Lock()
	e.replays++
	e.mu.Unlock()
	for _, w := range g.work {
		if err := w(); err != nil {
			return err
		}
	}
	return nil
}

func (e *hostEngine) destroyGraph(graph, exec uintptr) error {
	id := max(graph, exec)
	g := e.graphs[id]
	if g == nil {
		return fmt.Errorf("host engine: destroy of unknown graph %d", id)
	}
	g.pin.Unpin()
	delete(e.graphs, id)
	return nil
}
