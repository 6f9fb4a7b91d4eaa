package cuda

import (
	"errors"
	"os"
	"testing"

	"github.com/maas-ml/maas/tensor/tensortest"
)

// newHostBackend returns a Backend on the host emulation (OpenHost), or
// skips t without clang-14 (CI installs it and fails instead; see .ci/run).
// Its Close at the end of t checks that nothing was left allocated.
func newHostBackend(t testing.TB) *Backend {
	t.Helper()
	b, err := OpenHost()
	if errors.Is(err, ErrNoClang) {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	return b
}

// TestHostEmulation runs the shared correctness suite on the Backend over
// the host engine: every kernel of kernels/*.cu, compiled for the CPU,
// through the Backend's own buffers and launches, against
// tensor.Reference (GEMMs by the plain maas_gemm kernel).
func TestHostEmulation(t *testing.T) {
	tensortest.Run(t, newHostBackend(t))
}
