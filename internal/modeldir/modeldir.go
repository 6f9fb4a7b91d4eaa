package modeldir

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/nn/safetensors"
	"github.com/maas-ml/maas/tensor"
)

// Artifact file names inside a model directory.
const (
	WeightsFile = "model.safetensors"
	SpecFile    = "model.yaml"
)

// VocabKey is the weights-file metadata key under which a character-level
// language model keeps its vocabulary (the characters in token order).
const VocabKey = "vocab"

// Save writes the model directory: dir/model.safetensors (the weights) and
// dir/model.yaml (the job spec, which rebuilds the model and its input
// normalisation). Each file is written to a temp file and renamed.
func Save(dir string, spec *jobspec.Spec, m *nn.Model, meta map[string]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("modeldir: %w", err)
	}
	md := map[string]string{"name": spec.Name, "format": "maas/v1"}
	for k, v := range meta {
		md[k] = v
	}
	if err := m.SaveWeights(filepath.Join(dir, WeightsFile), md); err != nil {
		return fmt.Errorf("modeldir: %w", err)
	}
	y, err := spec.Marshal()
	if err != nil {
		return fmt.Errorf("modeldir: encode spec: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, SpecFile), y)
}

// Encode returns the two files of a model directory in memory: the
// weights (safetensors) and the job spec (YAML).
func Encode(spec *jobspec.Spec, m *nn.Model, meta map[string]string) (weights, specYAML []byte, err error) {
	md := map[string]string{"name": spec.Name, "format": "maas/v1"}
	for k, v := range meta {
		md[k] = v
	}
	var buf bytes.Buffer
	if err := safetensors.Encode(&buf, m.Weights(md)); err != nil {
		return nil, nil, fmt.Errorf("modeldir: %w", err)
	}
	y, err := spec.Marshal()
	if err != nil {
		return nil, nil, fmt.Errorf("modeldir: encode spec: %w", err)
	}
	return buf.Bytes(), y, nil
}

// Load reads a model directory written by Save onto backend b.
func Load(dir string, b tensor.Backend) (*jobspec.Spec, *nn.Model, error) {
	spec, err := jobspec.Load(filepath.Join(dir, SpecFile))
	if err != nil {
		return nil, nil, err
	}
	m, err := nn.Build(spec.Model, b)
	if err != nil {
		return nil, nil, err
	}
	if err := m.LoadWeights(filepath.Join(dir, WeightsFile)); err != nil {
		return nil, nil, err
	}
	return spec, m, nil
}

// writeFileAtomic writes data to a temp file beside path, syncs it and
// renames it over path, so readers see the old file or the new one, never
// a half-written one.
func writeFileAtomic(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
