//go:build nocuda

package cli

import (
	"strings"
	"testing"
)

// TestNoCUDA: a build without CUDA says so for --device cuda, and what to
// do instead.
func TestNoCUDA(t *testing.T) {
	_, _, err := deviceFlags{device: "cuda:1"}.backend(0)
	if err == nil || !strings.Contains(err.Error(), "built without CUDA support (-tags nocuda)") || !strings.Contains(err.Error(), "--device cpu") {
		t.Errorf("--device cuda:1 in a nocuda build: %v", err)
	}
}
