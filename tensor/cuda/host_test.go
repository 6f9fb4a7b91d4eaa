package cuda

import (
	"testing"

	"github.com/maas-ml/maas/tensor/tensortest"
)

// TestHostEmulation runs the shared correctness suite on the Backend over
// the host engine: every kernel of kernels/*.cu, compiled for the CPU,
// through the Backend's own buffers and launches, against
// tensor.Reference (GEMMs by the plain maas_gemm kernel).
func TestHostEmulation(t *testing.T) {
	tensortest.Run(t, newHostBackend(t))
}
