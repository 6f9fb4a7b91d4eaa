package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/modeldir"
)

// LoadIndex loads the newest version of every model in the coordinator's
// model index, fetching the files through the coordinator's API. Each
// model that fails is logged and counted, and the others load all the
// same; the error joins the failures (versions served already are none).
func (s *Server) LoadIndex(ctx context.Context, c *api.Client) error {
	all, err := c.Models(ctx)
	if err != nil {
		return fmt.Errorf("serve: model index: %w", err)
	}
	newest := map[string]api.ModelVersion{}
	var names []string
	for _, mv := range all {
		cur, ok := newest[mv.Name]
		if !ok {
			names = append(names, mv.Name)
		}
		if !ok || mv.Version > cur.Version {
			newest[mv.Name] = mv
		}
	}
	var errs []error
	for _, name := range names {
		mv := newest[name]
		if err := s.table.Load().check(mv.Name, mv.Version); err != nil {
			continue
		}
		specYAML, weights, err := fetchFiles(ctx, c, mv)
		if err != nil {
			errs = append(errs, s.loadFailed(mv.Name, mv.Version, fmt.Errorf("%w: %s version %d: %v", ErrLoad, mv.Name, mv.Version, err)))
			continue
		}
		if err := s.Load(mv.Name, mv.Version, specYAML, weights); err != nil && !errors.Is(err, ErrVersionLoaded) && !errors.Is(err, ErrVersionOld) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// fetchFiles downloads a version's two files through the coordinator.
func fetchFiles(ctx context.Context, c *api.Client, mv api.ModelVersion) (specYAML, weights []byte, err error) {
	var spec, w bytes.Buffer
	if err := c.ModelFile(ctx, mv.Name, mv.Version, modeldir.SpecFile, &spec); err != nil {
		return nil, nil, err
	}
	if err := c.ModelFile(ctx, mv.Name, mv.Version, modeldir.WeightsFile, &w); err != nil {
		return nil, nil, err
	}
	return spec.Bytes(), w.Bytes(), nil
}
