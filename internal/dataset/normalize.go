package dataset

import (
	"fmt"
	"math"
)

// Normalization maps a byte p of channel c to (p/255 - Mean[c]) / Std[c].
// An empty Mean means 0 and an empty Std means 1, so the zero value gives
// plain p/255. A slice of length 1 applies to all channels.
type Normalization struct {
	Mean, Std []float32
}

// Validate checks n for images with the given number of channels: Mean and
// Std each have length 0, 1 or channels; every value is finite; every Std
// is > 0; and the normalised values of bytes 0 and 255 are finite.
func (n Normalization) Validate(channels int) error {
	if channels <= 0 {
		return fmt.Errorf("%w: %d channels, want > 0", ErrNormalization, channels)
	}
	if l := len(n.Mean); l != 0 && l != 1 && l != channels {
		return fmt.Errorf("%w: %d mean values for %d channels, want 0, 1 or %d", ErrNormalization, l, channels, channels)
	}
	if l := len(n.Std); l != 0 && l != 1 && l != channels {
		return fmt.Errorf("%w: %d std values for %d channels, want 0, 1 or %d", ErrNormalization, l, channels, channels)
	}
	for i, m := range n.Mean {
		if !finite(m) {
			return fmt.Errorf("%w: mean[%d] = %v, want a finite value", ErrNormalization, i, m)
		}
	}
	for i, s := range n.Std {
		if !finite(s) || !(s > 0) {
			return fmt.Errorf("%w: std[%d] = %v, want a finite value > 0", ErrNormalization, i, s)
		}
	}
	for c := 0; c < channels; c++ {
		mean, std := n.channel(c)
		if lo, hi := (0-mean)/std, (1-mean)/std; !finite(lo) || !finite(hi) {
			return fmt.Errorf("%w: channel %d (mean %v, std %v) maps bytes outside the float32 range", ErrNormalization, c, mean, std)
		}
	}
	return nil
}

// Apply is the normalised value of v, a pixel of channel c scaled to
// [0, 1]; n must be valid.
func (n Normalization) Apply(v float32, c int) float32 {
	mean, std := n.channel(c)
	return (v - mean) / std
}

// channel returns the mean and std of channel c; n must be valid.
func (n Normalization) channel(c int) (mean, std float32) {
	mean, std = 0, 1
	switch len(n.Mean) {
	case 0:
	case 1:
		mean = n.Mean[0]
	default:
		mean = n.Mean[c]
	}
	switch len(n.Std) {
	case 0:
	case 1:
		std = n.Std[0]
	default:
		std = n.Std[c]
	}
	return mean, std
}

// table fills lut with the normalised value of every byte for channel c.
func (n Normalization) table(c int, lut *[256]float32) {
	mean, std := n.channel(c)
	for p := range lut {
		lut[p] = (float32(p)/255 - mean) / std
	}
}

// finite reports whether f is neither NaN nor infinite.
func finite(f float32) bool {
	return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0)
}
