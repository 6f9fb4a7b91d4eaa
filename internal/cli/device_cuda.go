//go:build !nocuda

package cli

import (
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/train/gputrain"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/tensor"
	"github.com/maas-ml/maas/tensor/cuda"
)

// openCUDA opens the CUDA backend on device ("cuda" or "cuda:N").
func openCUDA(device string, tf32 bool) (tensor.Backend, func(), error) {
	b, err := cuda.Open(device, cuda.Options{AllowTF32: tf32})
	if err != nil {
		return nil, nil, fmt.Errorf("--device %s: %w", device, err)
	}
	return b, func() { _ = b.Close() }, nil
}

// newDeviceTrainer returns the device-resident training step of spec on b,
// for batches of up to batch samples, with opt's updates on the device
// (nil: gradients only, for a worker). It returns nil for a backend other
// than CUDA, and for a model with a layer the trainer does not run, which
// then trains through b's per-call methods (logged).
func newDeviceTrainer(b tensor.Backend, spec nn.ModelSpec, batch int, opt *nn.OptimizerSpec, log *zap.Logger) (deviceTrainer, error) {
	cb, ok := b.(*cuda.Backend)
	if !ok {
		return nil, nil
	}
	t, err := gputrain.NewTrainer(cb, spec, batch, opt)
	if errors.Is(err, gputrain.ErrUnsupportedLayer) {
		log.Warn("the model trains through per-call copies to the GPU, not device-resident", zap.Error(err))
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}
