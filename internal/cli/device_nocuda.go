//go:build nocuda

package cli

import (
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/tensor"
)

// openCUDA fails: this build leaves out tensor/cuda (and purego, so that
// CGO_ENABLED=0 gives a static binary).
func openCUDA(device string, _ bool) (tensor.Backend, func(), error) {
	if device != "cuda" && !strings.HasPrefix(device, "cuda:") {
		return nil, nil, fmt.Errorf("--device %q: want cpu, or cuda[:N] in a build with CUDA support", device)
	}
	return nil, nil, fmt.Errorf("--device %s: this maas was built without CUDA support (-tags nocuda); use --device cpu, or a build without the tag", device)
}

// newDeviceTrainer returns nil: without CUDA every step runs on the CPU.
func newDeviceTrainer(tensor.Backend, nn.ModelSpec, int, *nn.OptimizerSpec, *zap.Logger) (deviceTrainer, error) {
	return nil, nil
}
