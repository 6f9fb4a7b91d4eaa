package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/maas-ml/maas/internal/datastore"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/train"
	"github.com/maas-ml/maas/internal/wire"
)

// trainSamples returns the size of the training split of spec's dataset,
// which fixes the steps of an epoch: a text's training windows are counted
// from the file at dataset.path (which every worker reads too). A pushed dataset (dataset.name) is
// looked up in the data bucket through the node's NATS connection: its
// manifest's kind fills in dataset.kind when the spec leaves it out
// (and the spec is validated again against it) and must match it when
// given. On an error it returns the field at fault and the HTTP status.
func (n *Node) trainSamples(ctx context.Context, spec *jobspec.Spec) (samples int, field string, code int, err error) {
	d := &spec.Dataset
	if d.Kind == "text" { // windows of the text at dataset.path, as every worker reads it
		data, _, _, err := train.Open(spec)
		if err != nil {
			field := "dataset.path"
			if strings.HasPrefix(err.Error(), "model.") {
				field = "model"
			}
			return 0, field, http.StatusBadRequest, err
		}
		return data.Len(), "", 0, nil
	}
	if d.Name == "" {
		return jobspec.Kinds[d.Kind].Train, "", 0, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	js, err := wire.JetStream(n.nc)
	if err != nil {
		return 0, "dataset.name", http.StatusInternalServerError, err
	}
	r, err := datastore.Open(ctx, js, d.Name)
	switch {
	case errors.Is(err, datastore.ErrNotFound):
		return 0, "dataset.name", http.StatusBadRequest, err
	case err != nil:
		return 0, "dataset.name", http.StatusServiceUnavailable, fmt.Errorf("read the manifest of dataset %q: %w", d.Name, err)
	}
	if d.Kind != "" && d.Kind != r.Kind {
		return 0, "dataset.kind", http.StatusBadRequest, fmt.Errorf("dataset.kind %q, but dataset %q was pushed as %s", d.Kind, d.Name, r.Kind)
	}
	if r.Train.N == 0 {
		return 0, "dataset.name", http.StatusBadRequest, fmt.Errorf("dataset %q has no training samples", d.Name)
	}
	d.Kind = r.Kind
	if err := spec.Validate(); err != nil {
		var fe *jobspec.FieldError
		if errors.As(err, &fe) {
			field = fe.Field
		}
		return 0, field, http.StatusBadRequest, fmt.Errorf("with dataset %q (%s): %w", d.Name, r.Kind, err)
	}
	return r.Train.N, "", 0, nil
}
