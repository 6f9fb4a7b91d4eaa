// Package gputrain is the device-resident training step on an NVIDIA GPU:
// Trainer holds a model's parameters, gradients, activations and optimizer
// state in one device allocation made once, queues a step on the
// cuda.Backend's one stream without a host round trip inside it, and
// captures the step as a CUDA graph when its batch size repeats, replaying
// it after.
//
// Its layers are package nn's (conv2d, relu, maxpool2d, flatten, dense,
// lstm, gru), one device layer each (layers.go, rnn.go), built from the
// kernels tensor/cuda offers on device addresses through cuda.Queue. A
// model with another layer is refused with ErrUnsupportedLayer and trains
// through the cuda.Backend's host-slice methods instead.
//
// The tests run the Trainer on the host emulation (cuda.OpenHost) against
// nn on tensor.Reference, and on a GPU when the machine has one.
package gputrain
