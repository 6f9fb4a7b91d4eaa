//go:build !amd64 || noasm

package tensor

const hasAVX2FMA = false

var simdKernel *microKernel
