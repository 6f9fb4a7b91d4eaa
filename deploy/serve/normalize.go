package serve

import (
	"github.com/maas-ml/maas/internal/dataset"
)

// pixelNorm is a model's input normalisation per channel: a pixel p in
// [0, 255] of channel c becomes (p/255 − mean[c]) / std[c], exactly as
// dataset.Batch computes it for training and evaluation.
type pixelNorm struct {
	mean, std []float32 // one per channel
	plane     int       // H·W
}

func newPixelNorm(n dataset.Normalization, channels, plane int) pixelNorm {
	pn := pixelNorm{mean: make([]float32, channels), std: make([]float32, channels), plane: plane}
	for c := range channels {
		pn.mean[c], pn.std[c] = 0, 1
		switch len(n.Mean) {
		case 0:
		case 1:
			pn.mean[c] = n.Mean[0]
		default:
			pn.mean[c] = n.Mean[c]
		}
		switch len(n.Std) {
		case 0:
		case 1:
			pn.std[c] = n.Std[0]
		default:
			pn.std[c] = n.Std[c]
		}
	}
	return pn
}

// apply normalises x (n, C, H, W) in place (the model may see each sample
// in another shape of the same size). Every value must be in
// [0, 255]; otherwise it returns the index of the first that is not, and
// x is unchanged.
func (pn pixelNorm) apply(x []float32) (bad int, ok bool) {
	for i, v := range x {
		if !(v >= 0 && v <= 255) {
			return i, false
		}
	}
	channels := len(pn.mean)
	for i := 0; i < len(x); i += pn.plane {
		c := (i / pn.plane) % channels
		mean, std := pn.mean[c], pn.std[c]
		row := x[i : i+pn.plane]
		for j, v := range row {
			row[j] = (v/255 - mean) / std
		}
	}
	return 0, true
}
