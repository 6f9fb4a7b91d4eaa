package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
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

// TestTrainPlot: `maas train --plot` draws the run's curves (one epoch of
// the tiny CNN, evaluated on the MNIST test set) next to the model; a
// --plot that is not a PNG is refused before training.
func TestTrainPlot(t *testing.T) {
	dir := t.TempDir()
	spec, img := "../../testdata/specs/tiny-cnn.yaml", filepath.Join(dir, "curves.png")
	if _, _, err := maas(context.Background(), "train", "-f", spec, "--plot", filepath.Join(dir, "c.svg"), "-o", filepath.Join(dir, "m0")); err == nil || !strings.Contains(err.Error(), ".png") {
		t.Fatalf("--plot c.svg: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "m0")); err == nil {
		t.Error("a model was written though --plot was refused")
	}
	if _, _, err := maas(context.Background(), "train", "-f", spec, "--threads", "2", "--eval", "mnist-test", "--plot", img, "-o", filepath.Join(dir, "m")); err != nil {
		t.Fatal(err)
	}
	checkCurves(t, img)
}
