package cuda

import (
	"unsafe"
)

// cuResult is a CUresult; 0 is CUDA_SUCCESS.
type cuResult uint32

// driver holds the CUDA driver API functions this package calls, bound
// from libcuda.so.1 (the _v2 entry points where the ABI has one).
type driver struct {
	cuInit                      func(flags uint32) cuResult
	cuGetErrorName              func(code cuResult, s *unsafe.Pointer) cuResult
	cuGetErrorString            func(code cuResult, s *unsafe.Pointer) cuResult
	cuDriverGetVersion          func(v *int32) cuResult
	cuDeviceGetCount            func(n *int32) cuResult
	cuDeviceGet                 func(dev *int32, ordinal int32) cuResult
	cuDeviceGetName             func(name *byte, n int32, dev int32) cuResult
	cuDeviceTotalMem            func(bytes *uint64, dev int32) cuResult
	cuDevicePrimaryCtxRetain    func(ctx *uintptr, dev int32) cuResult
	cuDevicePrimaryCtxRelease   func(dev int32) cuResult
	cuCtxSetCurrent             func(ctx uintptr) cuResult
	cuStreamCreate              func(s *uintptr, flags uint32) cuResult
	cuStreamDestroy             func(s uintptr) cuResult
	cuStreamSynchronize         func(s uintptr) cuResult
	cuMemAlloc                  func(p *uintptr, bytes uint64) cuResult
	cuMemFree                   func(p uintptr) cuResult
	cuMemAllocHost              func(p *unsafe.Pointer, bytes uint64) cuResult
	cuMemFreeHost               func(p unsafe.Pointer) cuResult
	cuMemcpyHtoDAsync           func(dst uintptr, src unsafe.Pointer, bytes uint64, s uintptr) cuResult
	cuMemcpyDtoHAsync           func(dst unsafe.Pointer, src uintptr, bytes uint64, s uintptr) cuResult
	cuModuleLoadData            func(m *uintptr, image unsafe.Pointer) cuResult
	cuModuleUnload              func(m uintptr) cuResult
	cuModuleGetFunction         func(f *uintptr, m uintptr, name string) cuResult
	cuLaunchKernel              func(f uintptr, gx, gy, gz, bx, by, bz, shared uint32, s uintptr, params, extra unsafe.Pointer) cuResult
	cuStreamBeginCapture        func(s uintptr, mode uint32) cuResult
	cuStreamEndCapture          func(s uintptr, g *uintptr) cuResult
	cuGraphInstantiateWithFlags func(exec *uintptr, g uintptr, flags uint64) cuResult
	cuGraphLaunch               func(exec uintptr, s uintptr) cuResult
	cuGraphExecDestroy          func(exec uintptr) cuResult
	cuGraphDestroy              func(g uintptr) cuResult
}

// CU_STREAM_CAPTURE_MODE_RELAXED: work from any thread joins a capture.
const captureModeRelaxed = 2

func (d *driver) bindings() []binding {
	return []binding{
		{&d.cuInit, "cuInit"},
		{&d.cuGetErrorName, "cuGetErrorName"},
		{&d.cuGetErrorString, "cuGetErrorString"},
		{&d.cuDriverGetVersion, "cuDriverGetVersion"},
		{&d.cuDeviceGetCount, "cuDeviceGetCount"},
		{&d.cuDeviceGet, "cuDeviceGet"},
		{&d.cuDeviceGetName, "cuDeviceGetName"},
		{&d.cuDeviceTotalMem, "cuDeviceTotalMem_v2"},
		{&d.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"},
		{&d.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"},
		{&d.cuCtxSetCurrent, "cuCtxSetCurrent"},
		{&d.cuStreamCreate, "cuStreamCreate"},
		{&d.cuStreamDestroy, "cuStreamDestroy_v2"},
		{&d.cuStreamSynchronize, "cuStreamSynchronize"},
		{&d.cuMemAlloc, "cuMemAlloc_v2"},
		{&d.cuMemFree, "cuMemFree_v2"},
		{&d.cuMemAllocHost, "cuMemAllocHost_v2"},
		{&d.cuMemFreeHost, "cuMemFreeHost"},
		{&d.cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"},
		{&d.cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"},
		{&d.cuModuleLoadData, "cuModuleLoadData"},
		{&d.cuModuleUnload, "cuModuleUnload"},
		{&d.cuModuleGetFunction, "cuModuleGetFunction"},
		{&d.cuLaunchKernel, "cuLaunchKernel"},
		{&d.cuStreamBeginCapture, "cuStreamBeginCapture_v2"},
		{&d.cuStreamEndCapture, "cuStreamEndCapture"},
		{&d.cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags"},
		{&d.cuGraphLaunch, "cuGraphLaunch"},
		{&d.cuGraphExecDestroy, "cuGraphExecDestroy"},
		{&d.cuGraphDestroy, "cuGraphDestroy"},
	}
}

// check turns a CUresult of op into nil or an *Error named by the driver.
func (d *driver) check(op string, r cuResult) error {
	if r == 0 {
		return nil
	}
	e := &Error{Op: op, Code: int(r)}
	var s unsafe.Pointer
	if d.cuGetErrorName != nil && d.cuGetErrorName(r, &s) == 0 {
		e.Name = goString(s)
	}
	if d.cuGetErrorString != nil && d.cuGetErrorString(r, &s) == 0 {
		e.Desc = goString(s)
	}
	return e
}

// goString copies a NUL-terminated C string.
func goString(p unsafe.Pointer) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(p, n)) != 0 {
		n++
	}
	return string(unsafe.Slice((*byte)(p), n))
}
