package netemu

import (
	"errors"
	"testing"
	"time"
)

// TestShapedLinks: two emulated hosts reach each other; a link shaped to
// 100 Mbit/s carries no more than that (15% margin) each way, and at
// least 60% of it even on a machine busy with other tests (95.7 Mbit/s
// when idle), and far more when the shaping is removed; the link counters
// see the transfer.
func TestShapedLinks(t *testing.T) {
	nt, err := New(2)
	if errors.Is(err, ErrUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := nt.Close(); err != nil {
			t.Error(err)
		}
	}()
	const rate = 100e6
	if err := nt.Shape(rate); err != nil {
		t.Fatal(err)
	}
	in0, _, err := nt.LinkBytes(1)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range [][2]int{{0, 1}, {1, 0}} {
		got, err := nt.Measure(t.Context(), dir[0], dir[1], time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("h%d → h%d at %.0f Mbit/s shaped: %.1f Mbit/s", dir[0]+1, dir[1]+1, rate/1e6, got/1e6)
		if got < 0.6*rate || got > 1.15*rate {
			t.Errorf("h%d → h%d: %.1f Mbit/s through links shaped to %.0f", dir[0]+1, dir[1]+1, got/1e6, rate/1e6)
		}
	}
	in1, _, err := nt.LinkBytes(1)
	if err != nil {
		t.Fatal(err)
	}
	if moved := float64(in1-in0) * 8; moved < 0.5*rate {
		t.Errorf("h2's link counted %.1f Mbit in, want about %.0f", moved/1e6, rate/1e6)
	}
	if err := nt.Shape(0); err != nil {
		t.Fatal(err)
	}
	got, err := nt.Measure(t.Context(), 0, 1, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("unshaped: %.0f Mbit/s", got/1e6)
	if got < 3*rate {
		t.Errorf("unshaped link: %.1f Mbit/s, want well above the shaped %.0f", got/1e6, rate/1e6)
	}
}
