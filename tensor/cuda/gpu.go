package cuda

import (
	"fmt"
	"runtime"
	"unsafe"
)

// gpu is the engine on a CUDA device: the primary context of one GPU, one
// stream, the kernels' modules and a cuBLAS handle bound to the stream.
type gpu struct {
	d       driver
	b       blas
	ordinal int
	dev     int32
	desc    string
	ctx     uintptr
	stream  uintptr
	modules map[string]uintptr
	funcs   [numKernels]uintptr
	handle  uintptr
	// alpha and beta are cuBLAS's scalars (host pointer mode: read when
	// the call is made).
	alpha, beta float32
}

// openGPU loads the driver and cuBLAS, retains GPU ordinal's primary
// context and loads the kernels.
func openGPU(ordinal int, tf32 bool) (_ *gpu, err error) {
	g := &gpu{ordinal: ordinal, modules: map[string]uintptr{}}
	h, err := driverLib.open()
	if err != nil {
		return nil, err
	}
	if err := register(h, "libcuda.so.1", g.d.bindings()); err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := g.d.check("cuInit", g.d.cuInit(0)); err != nil {
		if isNoDevice(err) {
			return nil, checkOrdinal(ordinal, 0)
		}
		return nil, fmt.Errorf("cuda: the NVIDIA driver loaded but did not start (is the GPU visible to this container, e.g. --gpus all?): %w", err)
	}
	var count int32
	if err := g.d.check("cuDeviceGetCount", g.d.cuDeviceGetCount(&count)); err != nil {
		return nil, err
	}
	if err := checkOrdinal(ordinal, int(count)); err != nil {
		return nil, err
	}
	if err := g.d.check("cuDeviceGet", g.d.cuDeviceGet(&g.dev, int32(ordinal))); err != nil {
		return nil, err
	}
	name := make([]byte, 256)
	if g.d.cuDeviceGetName(&name[0], int32(len(name)), g.dev) == 0 {
		g.desc = fmt.Sprintf("%s (cuda:%d)", goString(unsafe.Pointer(&name[0])), ordinal)
	} else {
		g.desc = fmt.Sprintf("cuda:%d", ordinal)
	}
	if err := g.d.check("cuDevicePrimaryCtxRetain", g.d.cuDevicePrimaryCtxRetain(&g.ctx, g.dev)); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			g.close()
		}
	}()
	if err := g.d.check("cuCtxSetCurrent", g.d.cuCtxSetCurrent(g.ctx)); err != nil {
		return nil, err
	}
	if err := g.d.check("cuStreamCreate", g.d.cuStreamCreate(&g.stream, 1)); err != nil { // CU_STREAM_NON_BLOCKING
		return nil, err
	}
	if err := g.loadKernels(); err != nil {
		return nil, err
	}
	hb, err := cublasLib.open()
	if err != nil {
		return nil, err
	}
	if err := register(hb, "libcublas", g.b.bindings()); err != nil {
		return nil, err
	}
	if err := blasCheck("cublasCreate_v2", g.b.cublasCreate(&g.handle)); err != nil {
		return nil, err
	}
	if err := blasCheck("cublasSetStream_v2", g.b.cublasSetStream(g.handle, g.stream)); err != nil {
		return nil, err
	}
	mode := int32(cublasDefaultMath)
	if tf32 {
		mode = cublasTF32TensorOpMath
	}
	if err := blasCheck("cublasSetMathMode", g.b.cublasSetMathMode(g.handle, mode)); err != nil {
		return nil, err
	}
	return g, nil
}

func isNoDevice(err error) bool {
	e, ok := err.(*Error)
	return ok && e.Is(ErrNoDevice)
}

// loadKernels loads each PTX file as a module and looks up its kernels.
func (g *gpu) loadKernels() error {
	for k, kd := range kernels {
		m, ok := g.modules[kd.file]
		if !ok {
			src, err := ptxFiles.ReadFile("ptx/" + kd.file + ".ptx")
			if err != nil {
				return fmt.Errorf("cuda: kernels %s missing from this build (run go generate ./tensor/cuda): %w", kd.file, err)
			}
			src = append(src, 0)
			if err := g.d.check("cuModuleLoadData("+kd.file+".ptx)", g.d.cuModuleLoadData(&m, unsafe.Pointer(&src[0]))); err != nil {
				return err
			}
			g.modules[kd.file] = m
		}
		if err := g.d.check("cuModuleGetFunction("+kd.symbol+")", g.d.cuModuleGetFunction(&g.funcs[k], m, kd.symbol+"\x00")); err != nil {
			return err
		}
	}
	return nil
}

func (g *gpu) name() string { return g.desc }

func (g *gpu) enter() error {
	runtime.LockOSThread()
	return g.d.check("cuCtxSetCurrent", g.d.cuCtxSetCurrent(g.ctx))
}

func (g *gpu) leave() { runtime.UnlockOSThread() }

func (g *gpu) alloc(bytes int) (uintptr, error) {
	var p uintptr
	return p, g.d.check("cuMemAlloc_v2", g.d.cuMemAlloc(&p, uint64(bytes)))
}

func (g *gpu) free(p uintptr) error { return g.d.check("cuMemFree_v2", g.d.cuMemFree(p)) }

func (g *gpu) allocHost(bytes int) (unsafe.Pointer, error) {
	var p unsafe.Pointer
	return p, g.d.check("cuMemAllocHost_v2", g.d.cuMemAllocHost(&p, uint64(bytes)))
}

func (g *gpu) freeHost(p unsafe.Pointer) error {
	return g.d.check("cuMemFreeHost", g.d.cuMemFreeHost(p))
}

func (g *gpu) upload(dst uintptr, src unsafe.Pointer, bytes int) error {
	return g.d.check("cuMemcpyHtoDAsync_v2", g.d.cuMemcpyHtoDAsync(dst, src, uint64(bytes), g.stream))
}

func (g *gpu) download(dst unsafe.Pointer, src uintptr, bytes int) error {
	return g.d.check("cuMemcpyDtoHAsync_v2", g.d.cuMemcpyDtoHAsync(dst, src, uint64(bytes), g.stream))
}

func (g *gpu) launch(k kernel, grid, block uint32, params unsafe.Pointer) error {
	r := g.d.cuLaunchKernel(g.funcs[k], grid, 1, 1, block, 1, 1, 0, g.stream, params, nil)
	if r != 0 {
		return g.d.check("cuLaunchKernel("+kernels[k].symbol+")", r)
	}
	return nil
}

func (g *gpu) gemm(transA, transB bool, m, n, k int, alpha float32, a uintptr, lda int, b uintptr, ldb int, beta float32, c uintptr, ldc int) error {
	ga := rowMajorGemm(transA, transB, m, n, k, a, lda, b, ldb)
	g.alpha, g.beta = alpha, beta
	return blasCheck("cublasSgemm_v2", g.b.cublasSgemm(g.handle, ga.transA, ga.transB, ga.m, ga.n, ga.k,
		&g.alpha, ga.first, ga.ldFirst, ga.second, ga.ldSecond, &g.beta, c, int32(ldc)))
}

func (g *gpu) sync() error {
	return g.d.check("cuStreamSynchronize", g.d.cuStreamSynchronize(g.stream))
}

func (g *gpu) beginCapture() error {
	return g.d.check("cuStreamBeginCapture_v2", g.d.cuStreamBeginCapture(g.stream, captureModeRelaxed))
}

func (g *gpu) endCapture() (uintptr, error) {
	var graph uintptr
	return graph, g.d.check("cuStreamEndCapture", g.d.cuStreamEndCapture(g.stream, &graph))
}

func (g *gpu) instantiate(graph uintptr) (uintptr, error) {
	var exec uintptr
	return exec, g.d.check("cuGraphInstantiateWithFlags", g.d.cuGraphInstantiateWithFlags(&exec, graph, 0))
}

func (g *gpu) launchGraph(exec uintptr) error {
	return g.d.check("cuGraphLaunch", g.d.cuGraphLaunch(exec, g.stream))
}

func (g *gpu) destroyGraph(graph, exec uintptr) error {
	var err error
	if exec != 0 {
		err = g.d.check("cuGraphExecDestroy", g.d.cuGraphExecDestroy(exec))
	}
	if graph != 0 {
		if e := g.d.check("cuGraphDestroy", g.d.cuGraphDestroy(graph)); err == nil {
			err = e
		}
	}
	return err
}

// close releases what openGPU made, in reverse; it is safe on a partly
// opened gpu.
func (g *gpu) close() error {
	var first error
	keep := func(err error) {
		if first == nil {
			first = err
		}
	}
	if g.handle != 0 {
		keep(blasCheck("cublasDestroy_v2", g.b.cublasDestroy(g.handle)))
		g.handle = 0
	}
	for f, m := range g.modules {
		keep(g.d.check("cuModuleUnload", g.d.cuModuleUnload(m)))
		delete(g.modules, f)
	}
	if g.stream != 0 {
		keep(g.d.check("cuStreamDestroy_v2", g.d.cuStreamDestroy(g.stream)))
		g.stream = 0
	}
	if g.ctx != 0 {
		keep(g.d.check("cuDevicePrimaryCtxRelease_v2", g.d.cuDevicePrimaryCtxRelease(g.dev)))
		g.ctx = 0
	}
	return first
}
