// Package nn builds neural networks from a spec and trains them: layers with
// their forward and backward passes side by side (Conv2D, MaxPool2D, Dense,
// ReLU, Flatten, Dropout), the softmax cross-entropy loss, parameter
// initialisation, optimizers (SGD with momentum and Nesterov, Adam, AdamW),
// gradient clipping and learning-rate schedules.
//
// A Model keeps all its parameters in one contiguous float32 vector, and
// their gradients in another of the same layout; each layer's weights are
// named views into it ("conv1.weight", "fc1.bias", in PyTorch's layouts).
// That flat vector is what parameter servers split into key ranges and what
// safetensors files hold.
//
// A training step reads as named calls:
//
//	logits := model.Forward(x, n, true)
//	loss := lossFn.Forward(logits, labels, n)
//	model.ZeroGrad()
//	model.Backward(lossFn.Backward())
//	opt.Step(model.Params, model.Grads, lr)
//
// Layers own their output and gradient buffers, sized for the largest batch
// seen, so the steady state allocates nothing.
package nn
