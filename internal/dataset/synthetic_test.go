package dataset

import (
	"slices"
	"testing"
)

func TestSynthetic(t *testing.T) {
	d := Synthetic("synth", 500, 3, 4, 5, 7, 11)
	if d.Name != "synth" || d.N != 500 || d.C != 3 || d.H != 4 || d.W != 5 || d.Classes != 7 {
		t.Fatalf("got %+v", *d)
	}
	if len(d.Pixels) != 500*60 || len(d.Labels) != 500 {
		t.Fatalf("got %d pixels, %d labels", len(d.Pixels), len(d.Labels))
	}
	var hist [7]int
	for _, l := range d.Labels {
		if l >= 7 {
			t.Fatalf("label %d >= 7", l)
		}
		hist[l]++
	}
	for c, h := range hist {
		if h == 0 {
			t.Errorf("class %d never drawn: %v", c, hist)
		}
	}
	if e := Synthetic("synth", 500, 3, 4, 5, 7, 11); !slices.Equal(d.Pixels, e.Pixels) || !slices.Equal(d.Labels, e.Labels) {
		t.Error("same seed gave different data")
	}
	if e := Synthetic("synth", 500, 3, 4, 5, 7, 12); slices.Equal(d.Pixels, e.Pixels) {
		t.Error("different seeds gave the same data")
	}
	if err := d.Batch([]int{0, 499}, Normalization{}, make([]float32, 120), make([]int32, 2)); err != nil {
		t.Errorf("Batch on synthetic data: %v", err)
	}
}

// TestSyntheticGolden pins the generator.
func TestSyntheticGolden(t *testing.T) {
	d := Synthetic("", 3, 1, 2, 2, 10, 7)
	if d.Name != "synthetic-7" {
		t.Errorf("Name = %q", d.Name)
	}
	wantLabels := []uint8{1, 1, 5}
	wantPixels := []uint8{0x6b, 0xc0, 0x3d, 0x83, 0x7d, 0x93, 0x13, 0x55, 0xb4, 0xbc, 0x80, 0xb5}
	if !slices.Equal(d.Labels, wantLabels) || !slices.Equal(d.Pixels, wantPixels) {
		t.Errorf("got labels %#v pixels %#v, want %#v %#v", d.Labels, d.Pixels, wantLabels, wantPixels)
	}
}

func TestSyntheticBadSizes(t *testing.T) {
	tests := []struct {
		n, c, h, w, classes int
		wantN, wantClasses  int
	}{
		{-5, 1, 2, 2, 10, 0, 10},
		{3, 1, 2, 2, 0, 3, 1},
		{3, 1, 2, 2, 1000, 3, 256},
		{2, maxInt, 2, 1, 10, 0, 10},             // overflows
		{1 << 20, 1 << 10, 1 << 4, 1, 10, 0, 10}, // 16 GiB: too big
	}
	for _, tt := range tests {
		d := Synthetic("x", tt.n, tt.c, tt.h, tt.w, tt.classes, 1)
		if d.N != tt.wantN || d.Classes != tt.wantClasses || len(d.Labels) != d.N {
			t.Errorf("Synthetic(n=%d c=%d h=%d w=%d classes=%d) = N %d Classes %d, want %d %d",
				tt.n, tt.c, tt.h, tt.w, tt.classes, d.N, d.Classes, tt.wantN, tt.wantClasses)
		}
	}
}
