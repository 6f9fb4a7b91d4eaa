package safetensors

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// TestGoldenFilesDecode decodes the files that testdata/gen_golden*.py write
// by hand in Python, proving the Python writer and this reader agree, and
// checks that this package's encoder reproduces them byte for byte.
func TestGoldenFilesDecode(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("..", "..", "testdata", "golden", "*.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 3 {
		t.Fatalf("found %d golden files (%v), want seed_cnn_28, seed_cnn_32 and optim; run testdata/gen_golden.py", len(paths), paths)
	}
	files := map[string]*File{}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if g := f.Metadata["generator"]; !slices.Contains([]string{"testdata/gen_golden.py", "testdata/gen_golden_rnn.py", "testdata/gen_golden_traj.py", "testdata/gen_golden_explain.py"}, g) || f.Metadata["torch"] == "" {
			t.Errorf("%s: metadata generator %q, torch %q", p, g, f.Metadata["torch"])
		}
		var buf bytes.Buffer
		if err := Encode(&buf, f); err != nil {
			t.Fatalf("%s: Encode: %v", p, err)
		}
		if !bytes.Equal(buf.Bytes(), raw) {
			t.Errorf("%s: re-encoding does not reproduce the Python writer's bytes", p)
		}
		files[filepath.Base(p)] = f
	}

	shape := func(file, name string, want ...int) {
		t.Helper()
		f := files[file]
		if f == nil {
			t.Fatalf("missing golden file %s", file)
		}
		tt, ok := f.Tensors[name]
		if !ok {
			t.Fatalf("%s: no tensor %q", file, name)
		}
		if !reflect.DeepEqual(tt.Shape, want) {
			t.Errorf("%s: %s shape %v, want %v", file, name, tt.Shape, want)
		}
	}

	params := map[string][]int{
		"conv2.weight": {64, 32, 3, 3}, "conv2.bias": {64},
		"conv3.weight": {128, 64, 3, 3}, "conv3.bias": {128},
		"fc1.bias": {128}, "fc2.weight": {10, 128}, "fc2.bias": {10},
		"conv1.bias": {32},
	}
	for _, c := range []struct {
		file      string
		n, ch, hw int
		flat      int
	}{
		{"seed_cnn_28.safetensors", 4, 1, 28, 1152},
		{"seed_cnn_32.safetensors", 3, 3, 32, 2048},
	} {
		shape(c.file, "input", c.n, c.ch, c.hw, c.hw)
		shape(c.file, "labels", c.n)
		shape(c.file, "logits", c.n, 10)
		shape(c.file, "loss", 1)
		all := map[string][]int{"conv1.weight": {32, c.ch, 3, 3}, "fc1.weight": {128, c.flat}}
		for k, v := range params {
			all[k] = v
		}
		for name, s := range all {
			for _, prefix := range []string{"param.", "grad.", "adam."} {
				shape(c.file, prefix+name, s...)
			}
		}
		f := files[c.file]
		if len(f.Tensors) != 4+3*len(all) {
			t.Errorf("%s: %d tensors, want %d", c.file, len(f.Tensors), 4+3*len(all))
		}
		labels, err := f.Tensors["labels"].Int64()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range labels {
			if l < 0 || l > 9 {
				t.Errorf("%s: label %d out of range", c.file, l)
			}
		}
		loss, err := f.Tensors["loss"].Float32()
		if err != nil || loss[0] <= 0 {
			t.Errorf("%s: loss %v, %v", c.file, loss, err)
		}
	}

	for _, cfg := range []string{"sgd", "sgd_momentum", "sgd_nesterov", "sgd_dampening", "adam", "adam_wd", "adamw"} {
		shape("optim.safetensors", cfg+".p0", 37)
		for i := 1; i <= 5; i++ {
			shape("optim.safetensors", fmt.Sprintf("%s.g%d", cfg, i), 37)
			shape("optim.safetensors", fmt.Sprintf("%s.p%d", cfg, i), 37)
		}
	}
	for name, s := range map[string]int{"clip.g": 37, "clip.a": 20, "clip.b": 17, "clip.a_out": 20, "clip.b_out": 17, "clip.max_norm": 1, "clip.total_norm": 1} {
		shape("optim.safetensors", name, s)
	}
}
