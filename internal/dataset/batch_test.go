package dataset

import (
	"math"
	"testing"
)

// tinyDataset is a 3-sample dataset of 2-channel 1x2 images with pixel bytes
// chosen for easy hand computation.
func tinyDataset() *Dataset {
	return &Dataset{
		Name: "tiny", N: 3, C: 2, H: 1, W: 2, Classes: 4,
		Pixels: []uint8{
			0, 255, 51, 102, // sample 0: channel 0 = {0, 255}, channel 1 = {51, 102}
			10, 20, 30, 40, // sample 1
			255, 0, 0, 255, // sample 2
		},
		Labels: []uint8{3, 1, 2},
	}
}

func TestBatchNormalization(t *testing.T) {
	d := tinyDataset()
	tests := []struct {
		name string
		norm Normalization
		idx  []int
		x    []float32 // hand-computed
		y    []int32
	}{
		{"plain", Normalization{}, []int{0},
			[]float32{0, 1, 0.2, 0.4}, []int32{3}},
		{"shared mean and std", Normalization{Mean: []float32{0.5}, Std: []float32{0.5}}, []int{0, 2},
			[]float32{-1, 1, -0.6, -0.2, 1, -1, -1, 1}, []int32{3, 2}},
		{"per channel", Normalization{Mean: []float32{0, 0.2}, Std: []float32{2, 0.1}}, []int{2, 0, 2},
			[]float32{0.5, 0, -2, 8, 0, 0.5, 0, 2, 0.5, 0, -2, 8}, []int32{2, 3, 2}},
		{"mean only", Normalization{Mean: []float32{0.2, 0.4}}, []int{0},
			[]float32{-0.2, 0.8, -0.2, 0}, []int32{3}},
		{"empty batch", Normalization{}, []int{}, []float32{}, []int32{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := make([]float32, len(tt.x)+1)
			y := make([]int32, len(tt.y)+1)
			x[len(tt.x)], y[len(tt.y)] = 42, 42 // beyond the batch: untouched
			if err := d.Batch(tt.idx, tt.norm, x, y); err != nil {
				t.Fatal(err)
			}
			for i, want := range tt.x {
				if math.Abs(float64(x[i]-want)) > 1e-5 {
					t.Errorf("x[%d] = %v, want %v", i, x[i], want)
				}
			}
			for i, want := range tt.y {
				if y[i] != want {
					t.Errorf("y[%d] = %d, want %d", i, y[i], want)
				}
			}
			if x[len(tt.x)] != 42 || y[len(tt.y)] != 42 {
				t.Error("Batch wrote beyond the batch")
			}
		})
	}
}

func TestBatchErrors(t *testing.T) {
	d := tinyDataset()
	x := make([]float32, 8)
	y := make([]int32, 2)
	tests := []struct {
		name string
		d    *Dataset
		idx  []int
		norm Normalization
		x    []float32
		y    []int32
		err  error
		msg  string
	}{
		{"index too large", d, []int{0, 3}, Normalization{}, x, y, ErrIndex, "idx[1] = 3"},
		{"negative index", d, []int{-1}, Normalization{}, x, y, ErrIndex, "idx[0] = -1"},
		{"short x", d, []int{0, 1}, Normalization{}, x[:7], y, ErrShortBuffer, "x has 7 floats, want 8"},
		{"short y", d, []int{0, 1}, Normalization{}, x, y[:1], ErrShortBuffer, "y has 1 labels, want 2"},
		{"bad norm", d, []int{0}, Normalization{Std: []float32{0}}, x, y, ErrNormalization, "std[0]"},
		{"nil dataset", nil, []int{0}, Normalization{}, x, y, ErrArgument, "nil"},
		{"short pixels", &Dataset{N: 2, C: 1, H: 2, W: 2, Pixels: make([]uint8, 7), Labels: make([]uint8, 2)},
			[]int{0}, Normalization{}, x, y, ErrArgument, "7 pixel bytes"},
		{"bad shape", &Dataset{N: 1, C: 0, H: 2, W: 2}, []int{0}, Normalization{}, x, y, ErrArgument, "C=0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range tt.x {
				tt.x[i] = -7
			}
			wantErr(t, tt.d.Batch(tt.idx, tt.norm, tt.x, tt.y), tt.err, tt.msg)
			for i, v := range tt.x {
				if v != -7 {
					t.Fatalf("x[%d] written on error", i)
				}
			}
		})
	}
}

func TestBatchAllocs(t *testing.T) {
	d := Synthetic("", 64, 3, 8, 8, 10, 1)
	idx := Permutation(nil, 16, 1, 0)
	x := make([]float32, len(idx)*d.SampleSize())
	y := make([]int32, len(idx))
	norm := Normalization{Mean: []float32{0.4914, 0.4822, 0.4465}, Std: []float32{0.247, 0.243, 0.261}}
	allocs := testing.AllocsPerRun(20, func() {
		if err := d.Batch(idx, norm, x, y); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Batch allocates %v times per call, want 0", allocs)
	}
}

func TestNormalizationValidate(t *testing.T) {
	f := func(v ...float32) []float32 { return v }
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	tests := []struct {
		name     string
		norm     Normalization
		channels int
		ok       bool
	}{
		{"zero value", Normalization{}, 3, true},
		{"shared", Normalization{f(0.5), f(0.25)}, 3, true},
		{"per channel", Normalization{f(0.1, 0.2, 0.3), f(1, 2, 3)}, 3, true},
		{"mixed lengths", Normalization{f(0.1), f(1, 2, 3)}, 3, true},
		{"wrong mean length", Normalization{f(0.1, 0.2), nil}, 3, false},
		{"wrong std length", Normalization{nil, f(1, 2, 3, 4)}, 3, false},
		{"zero std", Normalization{nil, f(1, 0, 1)}, 3, false},
		{"negative std", Normalization{nil, f(-1)}, 1, false},
		{"nan std", Normalization{nil, f(nan)}, 1, false},
		{"inf mean", Normalization{f(inf), nil}, 1, false},
		{"nan mean", Normalization{f(nan), nil}, 1, false},
		{"overflowing std", Normalization{nil, f(1e-45)}, 1, false},
		{"no channels", Normalization{}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.norm.Validate(tt.channels)
			if tt.ok && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !tt.ok {
				wantErr(t, err, ErrNormalization)
			}
		})
	}
}
