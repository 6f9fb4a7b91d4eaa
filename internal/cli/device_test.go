package cli

import (
	"strings"
	"testing"

	"github.com/maas-ml/maas/tensor"
)

// TestDescribeDevice: a CPU backend is described by its kernels and
// threads, what `maas cluster status` shows for the worker.
func TestDescribeDevice(t *testing.T) {
	b := tensor.NewGo(2)
	defer b.Close()
	if got := describeDevice(b); !strings.HasPrefix(got, "cpu ("+b.Name()) || !strings.HasSuffix(got, ", 2 threads)") {
		t.Errorf("describeDevice = %q, want cpu (%s, 2 threads)", got, b.Name())
	}
}
