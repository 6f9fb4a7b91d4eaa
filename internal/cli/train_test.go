package cli

import (
	"path/filepath"
	"testing"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/train"
)

// TestTextExamplesMatchTheirCorpus: every shipped text example's model
// fits the vocabulary of the corpus it names (edits to the corpus change
// it), so `maas train -f` on it does not stop at the vocabulary check.
func TestTextExamplesMatchTheirCorpus(t *testing.T) {
	paths, err := filepath.Glob("../../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, p := range paths {
		spec, err := jobspec.Load(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if spec.Dataset.Kind != "text" {
			continue
		}
		seen++
		tr, _, err := dataset.ReadText(filepath.Join("../..", spec.Dataset.Path), spec.Dataset.SeqLen, spec.ValidationFraction())
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if err := train.CheckVocab(spec, len(tr.Vocab)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if seen == 0 {
		t.Fatal("no text example found")
	}
}
