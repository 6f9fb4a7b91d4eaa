package train

import "github.com/maas-ml/maas/internal/dataset"

// Source is data to train or evaluate on: samples of SampleSize float32
// inputs, each with LabelsPerSample integer targets (one class for an
// image; the next token of every step for a text window).
type Source interface {
	Name() string
	Len() int
	SampleSize() int
	LabelsPerSample() int
	// Batch writes the inputs of samples idx into x and their targets into
	// y, without allocating.
	Batch(idx []int, x []float32, y []int32) error
}

// Images is an image dataset with its input normalisation, as a Source.
type Images struct {
	D    *dataset.Dataset
	Norm dataset.Normalization
}

var _ Source = Images{}

func (s Images) Name() string         { return s.D.Name }
func (s Images) Len() int             { return s.D.N }
func (s Images) SampleSize() int      { return s.D.SampleSize() }
func (s Images) LabelsPerSample() int { return 1 }
func (s Images) Batch(idx []int, x []float32, y []int32) error {
	return s.D.Batch(idx, s.Norm, x, y)
}

// Text is a character-level corpus as a Source: windows of SeqLen token
// ids with their next tokens as targets.
type Text struct{ T *dataset.Text }

var _ Source = Text{}

func (s Text) Name() string         { return s.T.Name }
func (s Text) Len() int             { return s.T.Len() }
func (s Text) SampleSize() int      { return s.T.SeqLen }
func (s Text) LabelsPerSample() int { return s.T.SeqLen }
func (s Text) Batch(idx []int, x []float32, y []int32) error {
	return s.T.Batch(idx, x, y)
}
