package worker

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/datastore"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/wire"
)

// pushedDataset returns a split of the dataset spec names (dataset.name),
// pushed to the Object Store with `maas data push`: its manifest is read
// now, and its shards load when Batch first needs them, from the cache
// directory or the bucket. A dataset is kept per manifest digest, so a
// re-pushed one is read afresh.
func (a *Agent) pushedDataset(ctx context.Context, spec *jobspec.Spec, split dataset.Split) (*dataset.Dataset, error) {
	name, outer := spec.Dataset.Name, ctx
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	js, err := wire.JetStream(a.nc)
	if err != nil {
		return nil, err
	}
	r, err := datastore.Open(ctx, js, name)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", name, err)
	}
	if k := spec.Dataset.Kind; k != "" && k != r.Kind {
		return nil, fmt.Errorf("dataset %s: the job wants kind %s, but it was pushed again as %s", name, k, r.Kind)
	}
	prefix := "pushed|" + name + "|"
	key := fmt.Sprintf("%s%s|%d", prefix, r.Digest, split)
	a.mu.Lock()
	d, life := a.data[key], a.life
	a.mu.Unlock()
	if d != nil {
		return d, nil
	}
	if life == nil { // assigned outside Run: the fetches end with the caller's ctx
		life = outer
	}
	dir := a.w.cfg.CacheDir
	if dir == "" {
		if dir, err = datastore.DefaultCacheDir(); err != nil {
			a.log.Warn("no cache directory: dataset shards are kept in memory only", zap.Error(err))
		}
	}
	d, err = r.Split(life, split, datastore.SplitOptions{CacheDir: dir, Logger: a.log})
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", name, err)
	}
	a.mu.Lock()
	for k := range a.data { // earlier pushes of the name
		if strings.HasPrefix(k, prefix) && !strings.HasPrefix(k, prefix+r.Digest+"|") {
			delete(a.data, k)
		}
	}
	a.data[key] = d
	a.mu.Unlock()
	return d, nil
}
