package train

import (
	"fmt"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/modeldir"
	"github.com/maas-ml/maas/nn"
)

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

// Open opens the training data of spec from its dataset path (MNIST,
// CIFAR-10 or a text file; a pushed dataset is the worker's to fetch). For
// text it also returns the held-out tail (dataset.validation) as val, and
// the metadata a model trained on it must carry (its vocabulary, under
// modeldir.VocabKey); it checks the model's vocabulary against the text's.
func Open(spec *jobspec.Spec) (data, val Source, meta map[string]string, err error) {
	meta = map[string]string{}
	if spec.Dataset.Kind == "text" {
		tr, v, err := dataset.ReadText(spec.Dataset.Path, spec.Dataset.SeqLen, spec.ValidationFraction())
		if err != nil {
			return nil, nil, nil, err
		}
		if err := CheckVocab(spec, len(tr.Vocab)); err != nil {
			return nil, nil, nil, err
		}
		meta[modeldir.VocabKey] = string(tr.Vocab)
		if v.Len() > 0 {
			val = Text{T: v}
		}
		return Text{T: tr}, val, meta, nil
	}
	d, err := dataset.Open(spec.Dataset.Kind, spec.Dataset.Path, dataset.Train)
	if err != nil {
		return nil, nil, nil, err
	}
	return Images{D: d, Norm: spec.Normalization()}, nil, meta, nil
}

// CheckVocab checks a text model against the vocabulary of its text: the
// embedding's vocab and the output's width must both be its size.
func CheckVocab(spec *jobspec.Spec, vocab int) error {
	for i, l := range spec.Model.Layers {
		if l.Type == "embedding" && l.Vocab != vocab {
			return fmt.Errorf("model.layers[%d].vocab: %d, but %s has %d distinct characters", i, l.Vocab, spec.Dataset.Path, vocab)
		}
	}
	out, err := nn.OutputShape(spec.Model)
	if err == nil && out[len(out)-1] != vocab {
		return fmt.Errorf("model.layers[%d].units: the output has %d logits per step, but %s has %d distinct characters", len(spec.Model.Layers)-1, out[len(out)-1], spec.Dataset.Path, vocab)
	}
	return err
}
