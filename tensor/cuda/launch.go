package cuda

import (
	"math"
	"unsafe"

	"github.com/maas-ml/maas/tensor"
)

// kernel names one of the kernels in kernels/*.cu.
type kernel int

const (
	kIm2col kernel = iota
	kCol2im
	kConvBiasRelu
	kAddBias
	kSumBias
	kTranspose021
	kRelu
	kReluBackward
	kSigmoid
	kTanh
	kMaxPool
	kMaxPoolBackward
	kSoftmax
	kSoftmaxXent
	kSoftmaxXentBackward
	kArgmax
	kPartialDot
	kAxpy
	kScale
	kFill
	kSGD
	kAdam
	kLSTMForward
	kLSTMBackward
	kGRUForward
	kGRUBackward
	kGemm
	numKernels
)

// kernels gives each kernel's source file (its PTX module) and symbol.
var kernels = [numKernels]struct{ file, symbol string }{
	kIm2col:              {"im2col", "maas_im2col"},
	kCol2im:              {"im2col", "maas_col2im"},
	kConvBiasRelu:        {"conv", "maas_conv_bias_relu"},
	kAddBias:             {"bias", "maas_add_bias"},
	kSumBias:             {"bias", "maas_sum_bias"},
	kTranspose021:        {"transpose", "maas_transpose021"},
	kRelu:                {"act", "maas_relu"},
	kReluBackward:        {"act", "maas_relu_backward"},
	kSigmoid:             {"act", "maas_sigmoid"},
	kTanh:                {"act", "maas_tanh"},
	kMaxPool:             {"maxpool", "maas_maxpool"},
	kMaxPoolBackward:     {"maxpool", "maas_maxpool_backward"},
	kSoftmax:             {"softmax", "maas_softmax"},
	kSoftmaxXent:         {"softmax", "maas_softmax_xent"},
	kSoftmaxXentBackward: {"softmax", "maas_softmax_xent_backward"},
	kArgmax:              {"softmax", "maas_argmax"},
	kPartialDot:          {"reduce", "maas_partial_dot"},
	kAxpy:                {"reduce", "maas_axpy"},
	kScale:               {"reduce", "maas_scale"},
	kFill:                {"reduce", "maas_fill"},
	kSGD:                 {"optim", "maas_sgd"},
	kAdam:                {"optim", "maas_adam"},
	kLSTMForward:         {"lstm", "maas_lstm_forward"},
	kLSTMBackward:        {"lstm", "maas_lstm_backward"},
	kGRUForward:          {"gru", "maas_gru_forward"},
	kGRUBackward:         {"gru", "maas_gru_backward"},
	kGemm:                {"gemm", "maas_gemm"},
}

// blockSize is the threads per block of every launch.
const blockSize = 256

// maxElems bounds the element counts of one call: the kernels index with
// 32-bit ints.
const maxElems = math.MaxInt32

// maxParams bounds a kernel's arguments (a geometry struct counts as one).
const maxParams = 16

// launchArgs is the argument block of a launch: each kernel argument is a
// 4- or 8-byte value in vals (or a geometry in geom), and ptrs points to
// them, the layout cuLaunchKernel reads. It lives in one pinned Go
// allocation per Backend, guarded by the Backend's mutex.
type launchArgs struct {
	vals [maxParams]uint64
	geom [12]int32
	ptrs [maxParams + 1]unsafe.Pointer
}

// Argument encoders: a kernel's int, float and pointer parameters.
func i32(v int) uint64     { return uint64(uint32(int32(v))) }
func f32(v float32) uint64 { return uint64(math.Float32bits(v)) }
func ptr(p uintptr) uint64 { return uint64(p) }
func flag(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

// convGeom is the maas_conv_geom the im2col kernels take.
func convGeom(g tensor.ConvGeom, n int) [12]int32 {
	return [12]int32{int32(n), int32(g.C), int32(g.H), int32(g.W), int32(g.KH), int32(g.KW), int32(g.SH), int32(g.SW), int32(g.PH), int32(g.PW), int32(g.OH()), int32(g.OW())}
}

// poolGeom is the maas_pool_geom the max-pool kernels take.
func poolGeom(g tensor.PoolGeom, planes int) [12]int32 {
	return [12]int32{int32(planes), int32(g.H), int32(g.W), int32(g.KH), int32(g.KW), int32(g.SH), int32(g.SW), int32(g.OH()), int32(g.OW())}
}

// gridFor returns the blocks that cover n threads.
func gridFor(n int) uint32 { return uint32((n + blockSize - 1) / blockSize) }
