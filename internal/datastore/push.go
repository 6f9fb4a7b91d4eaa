package datastore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/wire"
)

// DefaultShardSamples is the samples per shard when PushOptions does not
// say: 4096 MNIST samples are 3.2 MB, 4096 CIFAR-10 samples 12.6 MB.
const DefaultShardSamples = 4096

// PushOptions tune Push.
type PushOptions struct {
	// ShardSamples is the samples per shard (default DefaultShardSamples).
	ShardSamples int
	// Limit, when positive, keeps at most the first Limit samples of each
	// split (for trial runs).
	Limit int
	// Progress, when set, is called after each shard with the samples
	// stored so far and the total of both splits.
	Progress func(done, total int)
}

// Push reads the dataset of kind (mnist or cifar10) in dir, both splits,
// and stores it in the bucket as dataset name, replacing a dataset of that
// name: the old manifest is removed first, the shards and then the
// manifest written, and the old shards the new manifest does not name
// deleted. It returns the new manifest.
func Push(ctx context.Context, js jetstream.JetStream, name, kind, dir string, o PushOptions) (*Manifest, error) {
	if err := dataset.ValidName(name); err != nil {
		return nil, err
	}
	if o.ShardSamples == 0 {
		o.ShardSamples = DefaultShardSamples
	}
	if o.ShardSamples < 0 || o.Limit < 0 {
		return nil, fmt.Errorf("datastore: shard samples %d and limit %d must not be negative", o.ShardSamples, o.Limit)
	}
	kind = strings.ToLower(strings.TrimSpace(kind))
	var splits [2]*dataset.Dataset
	for i, s := range []dataset.Split{dataset.Train, dataset.Test} {
		d, err := dataset.Open(kind, dir, s)
		if err != nil {
			return nil, fmt.Errorf("read %s %s split: %w", kind, s, err)
		}
		if o.Limit > 0 && d.N > o.Limit {
			d.N = o.Limit
		}
		splits[i] = d
	}
	tr := splits[0]
	m := &Manifest{Version: manifestVersion, Name: name, Kind: kind, C: tr.C, H: tr.H, W: tr.W, Classes: tr.Classes,
		ShardSamples: o.ShardSamples, Pushed: time.Now().UTC()}
	if err := m.Validate(); err != nil { // the shape and kind; no shards yet
		return nil, err
	}

	store, err := openBucket(ctx, js, true)
	if err != nil {
		return nil, err
	}
	if err := store.Delete(ctx, ManifestObject(name)); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, explain(js, fmt.Errorf("remove the old manifest of %s: %w", name, err))
	}
	total, done := tr.N+splits[1].N, 0
	keep := map[string]bool{ManifestObject(name): true}
	for i, s := range []dataset.Split{dataset.Train, dataset.Test} {
		d, sp := splits[i], m.Split(s)
		sp.N = d.N
		ss := d.SampleSize()
		for first, k := 0, 0; first < d.N; first, k = first+o.ShardSamples, k+1 {
			count := min(o.ShardSamples, d.N-first)
			b := EncodeShard(ShardHeader{C: d.C, H: d.H, W: d.W, First: first, Count: count},
				d.Pixels[first*ss:(first+count)*ss], d.Labels[first:first+count])
			sum := sha256.Sum256(b)
			sh := Shard{Object: ShardObject(name, s, k), First: first, Count: count, Bytes: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}
			if _, err := store.PutBytes(ctx, sh.Object, b); err != nil {
				return nil, explain(js, fmt.Errorf("store %s: %w", sh.Object, err))
			}
			sp.Shards = append(sp.Shards, sh)
			keep[sh.Object] = true
			done += count
			if o.Progress != nil {
				o.Progress(done, total)
			}
		}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if _, err := store.Put(ctx, jetstream.ObjectMeta{Name: ManifestObject(name), Description: "maas dataset manifest"}, bytes.NewReader(mb)); err != nil {
		return nil, explain(js, fmt.Errorf("store %s: %w", ManifestObject(name), err))
	}
	if _, err := deleteObjects(ctx, js, store, name, keep); err != nil {
		return nil, fmt.Errorf("dataset %s is pushed, but removing the shards of its previous version failed: %w", name, err)
	}
	return m, nil
}

// deleteObjects deletes the objects of dataset name not in keep and
// returns how many it deleted.
func deleteObjects(ctx context.Context, js jetstream.JetStream, store jetstream.ObjectStore, name string, keep map[string]bool) (int, error) {
	infos, err := store.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return 0, nil
	}
	if err != nil {
		return 0, explain(js, fmt.Errorf("list bucket %s: %w", wire.DataBucket, err))
	}
	n := 0
	for _, info := range infos {
		if !strings.HasPrefix(info.Name, name+"/") || keep[info.Name] {
			continue
		}
		if err := store.Delete(ctx, info.Name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return n, explain(js, fmt.Errorf("delete %s: %w", info.Name, err))
		}
		n++
	}
	return n, nil
}

// Remove deletes dataset name: its manifest first (so it vanishes at
// once), then its shards. A name with neither is ErrNotFound.
func Remove(ctx context.Context, js jetstream.JetStream, name string) error {
	if err := dataset.ValidName(name); err != nil {
		return err
	}
	store, err := openBucket(ctx, js, false)
	if err != nil {
		return err
	}
	_, err = store.GetInfo(ctx, ManifestObject(name))
	found := err == nil
	if err == nil {
		err = store.Delete(ctx, ManifestObject(name))
	}
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return explain(js, fmt.Errorf("delete %s: %w", ManifestObject(name), err))
	}
	n, err := deleteObjects(ctx, js, store, name, nil)
	if err != nil {
		return err
	}
	if !found && n == 0 {
		return fmt.Errorf("%w: %q is not in bucket %s (`maas data ls` lists the datasets)", ErrNotFound, name, wire.DataBucket)
	}
	return nil
}

// List returns the manifests of every complete dataset, sorted by name;
// none when the bucket does not exist yet.
func List(ctx context.Context, js jetstream.JetStream) ([]*Manifest, error) {
	store, err := openBucket(ctx, js, false)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	infos, err := store.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, explain(js, fmt.Errorf("list bucket %s: %w", wire.DataBucket, err))
	}
	var ms []*Manifest
	for _, info := range infos {
		name, ok := strings.CutSuffix(info.Name, "/manifest.json")
		if !ok || strings.Contains(name, "/") {
			continue
		}
		b, err := store.GetBytes(ctx, info.Name)
		if errors.Is(err, jetstream.ErrObjectNotFound) { // removed meanwhile
			continue
		}
		if err != nil {
			return nil, explain(js, fmt.Errorf("read %s: %w", info.Name, err))
		}
		m, _, err := parseManifest(name, b)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	return ms, nil
}
