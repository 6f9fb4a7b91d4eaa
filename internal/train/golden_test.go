package train

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/nn/safetensors"
	"github.com/maas-ml/maas/tensor"
)

// trajTol is the error allowed on a parameter tensor after k steps, in
// units of the largest element of that tensor's total update θ_k − θ_0,
// when PyTorch's own float32 run strays less (else 3x PyTorch's figure).
const trajTol = 1e-3

// goldenCases are the cases of testdata/golden/traj.safetensors.
var goldenCases = []string{"cnn_adam", "cnn_adam_b0", "cnn_adamw", "cnn_nesterov", "cnn32_adam", "lstm_adam", "gru_adam"}

// TestGoldenTrajectories trains each case of testdata/golden/traj.safetensors
// (testdata/gen_golden_traj.py: the seed CNN under Adam, Adam with β1 = 0,
// AdamW and Nesterov SGD on real MNIST; a 3x32x32 CNN; the LSTM and GRU
// examples) for 10 steps from PyTorch's initial weights on the same batches,
// through Trainer.Run, and compares θ after steps 1, 2, 5 and 10 with
// PyTorch's float64 trajectory: max |θ_k − θ64_k| / max |θ64_k − θ_0| per
// tensor must stay within max(1e-3, 3 × PyTorch float32's own figure).
//
// "reference" runs on tensor.Reference, whose kernels sum in float64 and
// round once, so that the step is checked as a computation: data order,
// layers, loss, clipping and optimizer, all 10 steps. "fast" runs on the Go
// backend (AVX2 kernels, or plain Go under the noasm tag) with 2 threads,
// so that the result is the same on every machine, and checks steps 1 and
// 2. Past those, any float32 implementation leaves float64's trajectory
// now and then: a max-pool window whose two largest inputs lie within the
// rounding error of the convolution, or an update of an element whose
// gradient is a near-cancellation, goes the other way, and Adam turns that
// element's error into a whole step. PyTorch's own float32 runs do the same
// (its im2col convolution, or 2 threads, breaks the bound on several of
// these cases; docs/benchmarks.md, "Training numerics"), so later steps of
// the fast path are logged, not held to the bound.
func TestGoldenTrajectories(t *testing.T) {
	g, err := safetensors.ReadFile(filepath.Join("..", "..", "testdata", "golden", "traj.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	var checkpoints []int
	if err := json.Unmarshal([]byte(g.Metadata["checkpoints"]), &checkpoints); err != nil {
		t.Fatalf("golden metadata checkpoints: %v", err)
	}
	mnist, err := dataset.Open("mnist", "", dataset.Train)
	if err != nil {
		t.Fatal(err)
	}
	fast := tensor.NewGo(2)
	t.Cleanup(fast.Close)
	t.Run("fast", func(t *testing.T) {
		for _, c := range goldenCases {
			t.Run(c, func(t *testing.T) { goldenTrajectory(t, g, c, fast, mnist, checkpoints, 2) })
		}
	})
	t.Run("reference", func(t *testing.T) {
		if testing.Short() || raceEnabled {
			t.Skip("the reference backend takes minutes (skipped with -short and under the race detector)")
		}
		for _, c := range goldenCases {
			t.Run(c, func(t *testing.T) {
				t.Parallel()
				goldenTrajectory(t, g, c, tensor.Reference, mnist, checkpoints, slices.Max(checkpoints))
			})
		}
	})
}

// goldenTrajectory trains case c on backend b and checks θ at each
// checkpoint; those past lastChecked are logged only.
func goldenTrajectory(t *testing.T, g *safetensors.File, c string, b tensor.Backend, mnist *dataset.Dataset, checkpoints []int, lastChecked int) {
	spec, err := jobspec.Parse([]byte(g.Metadata[c+".spec"]))
	if err != nil {
		t.Fatalf("golden spec of %s: %v", c, err)
	}
	d := mnist
	if spec.Dataset.Kind != "mnist" {
		d = goldenImages(t, g, "cnn32")
	}
	tr, err := NewFromSource(spec, b, Images{D: d, Norm: spec.Normalization()})
	if err != nil {
		t.Fatal(err)
	}
	init := &safetensors.File{Tensors: map[string]safetensors.Tensor{}}
	for _, v := range tr.Model.Views {
		init.Tensors[v.Name] = g.Tensors[g.Metadata[c+".init"]+".init."+v.Name]
	}
	if err := tr.Model.SetWeights(init); err != nil {
		t.Fatal(err)
	}
	theta0 := slices.Clone(tr.Model.Params)
	var f32err map[string]map[string]float64
	if err := json.Unmarshal([]byte(g.Metadata[c+".f32err"]), &f32err); err != nil {
		t.Fatalf("golden metadata %s.f32err: %v", c, err)
	}
	check := func(step int) {
		worst, worstName, ref := 0.0, "", 0.0
		for _, v := range tr.Model.Views {
			want := goldenDelta(t, g, fmt.Sprintf("%s.delta%d.%s", c, step, v.Name), fmt.Sprintf("%s.scale%d.%s", c, step, v.Name))
			e := trajErr(tr.Model.Params[v.Offset:v.Offset+v.Size], theta0[v.Offset:v.Offset+v.Size], want)
			pt := f32err[fmt.Sprint(step)][v.Name]
			if tol := max(trajTol, 3*pt); e > tol && step <= lastChecked {
				t.Errorf("step %d: %s is %.2e of its update away from PyTorch float64 (allowed %.1e; PyTorch float32 is %.1e away)", step, v.Name, e, tol, pt)
			}
			if e > worst {
				worst, worstName = e, v.Name
			}
			ref = max(ref, pt)
		}
		note := ""
		if step > lastChecked {
			note = " (not checked)"
		}
		t.Logf("step %2d: worst tensor %-18s %.1e of its update; PyTorch float32: %.1e%s", step, worstName, worst, ref, note)
	}
	_, err = tr.Run(context.Background(), Options{MaxSteps: slices.Max(checkpoints), OnStep: func(p Progress) {
		if slices.Contains(checkpoints, p.GlobalStep) {
			check(p.GlobalStep)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
}

// trajErr is max |θ − θ0 − want| / max |want|, in float64.
func trajErr(theta, theta0 []float32, want []float64) float64 {
	var d, m float64
	for i, w := range want {
		d = math.Max(d, math.Abs(float64(theta[i])-float64(theta0[i])-w))
		m = math.Max(m, math.Abs(w))
	}
	if m == 0 {
		return d
	}
	return d / m
}

// goldenDelta decodes an update stored as I16 steps of scale/32767.
func goldenDelta(t *testing.T, g *safetensors.File, name, scaleName string) []float64 {
	t.Helper()
	q, ok := g.Tensors[name]
	if !ok || q.DType != safetensors.DTypeI16 {
		t.Fatalf("golden tensor %q missing or not I16", name)
	}
	s, err := g.Tensors[scaleName].Float32()
	if err != nil || len(s) != 1 {
		t.Fatalf("golden tensor %q: %v", scaleName, err)
	}
	out := make([]float64, len(q.Data)/2)
	for i := range out {
		out[i] = float64(int16(binary.LittleEndian.Uint16(q.Data[2*i:]))) * float64(s[0]) / 32767
	}
	return out
}

// goldenImages is the image set stored under prefix (pixels U8 (N, C, H, W),
// labels I64).
func goldenImages(t *testing.T, g *safetensors.File, prefix string) *dataset.Dataset {
	t.Helper()
	px, ok := g.Tensors[prefix+".pixels"]
	if !ok || px.DType != safetensors.DTypeU8 || len(px.Shape) != 4 {
		t.Fatalf("golden tensor %s.pixels missing or not U8 (N, C, H, W)", prefix)
	}
	labels, err := g.Tensors[prefix+".labels"].Int64()
	if err != nil {
		t.Fatal(err)
	}
	d := &dataset.Dataset{Name: prefix, N: px.Shape[0], C: px.Shape[1], H: px.Shape[2], W: px.Shape[3], Classes: 10, Pixels: px.Data}
	for _, l := range labels {
		d.Labels = append(d.Labels, uint8(l))
	}
	return d
}
