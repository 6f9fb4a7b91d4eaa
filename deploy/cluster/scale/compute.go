package scale

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/train"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/tensor"
)

// MeasureCompute times what a worker computes for a step of spec's model
// on one core: forward, loss and backward of a batch of spec.BatchSize
// synthetic samples (the optimizer runs on the parameter servers). It
// returns the median over steps (after two untimed ones) per sample, and
// the model's parameter count.
func MeasureCompute(spec *jobspec.Spec, steps int) (perSample time.Duration, params int, err error) {
	kind, ok := jobspec.Kinds[spec.Dataset.Kind]
	if !ok {
		return 0, 0, fmt.Errorf("scale: the %s dataset kind has no fixed sample shape to measure on", spec.Dataset.Kind)
	}
	b := tensor.NewGo(1)
	defer b.Close()
	m, err := nn.Build(spec.Model, b)
	if err != nil {
		return 0, 0, err
	}
	m.Init(spec.Seed)
	n := spec.BatchSize
	in := kind.Shape
	data := train.Images{D: dataset.Synthetic("synthetic", n, in[0], in[1], in[2], kind.Classes, 1), Norm: spec.Normalization()}
	x, y := make([]float32, n*data.SampleSize()), make([]int32, n)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	if err := data.Batch(idx, x, y); err != nil {
		return 0, 0, err
	}
	out := m.OutShape()
	loss := nn.NewSoftmaxCrossEntropy(b, out[len(out)-1])
	var times []time.Duration
	for s := range steps + 2 {
		start := time.Now()
		train.Gradient(m, loss, x, y, n)
		if s >= 2 {
			times = append(times, time.Since(start))
		}
	}
	slices.Sort(times)
	return times[len(times)/2] / time.Duration(n), len(m.Params), nil
}

// CPUModel names this machine's CPU as lscpu does ("AMD EPYC (family 25,
// model 17)" where the model name is that short), or "unknown".
func CPUModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	fields := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			if len(fields) > 0 {
				break // the first processor's block is enough
			}
			continue
		}
		fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	name := fields["model name"]
	if name == "" {
		return "unknown"
	}
	if fam, model := fields["cpu family"], fields["model"]; fam != "" && model != "" {
		return fmt.Sprintf("%s (family %s, model %s)", name, fam, model)
	}
	return name
}
