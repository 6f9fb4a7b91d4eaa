package datastore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/wire"
)

// Remote is a pushed dataset as its manifest describes it.
type Remote struct {
	*Manifest
	// Digest is the hex SHA-256 of the manifest object: it changes with
	// every push.
	Digest string
	js     jetstream.JetStream
	store  objectGetter
}

// objectGetter is what Remote needs of the bucket.
type objectGetter interface {
	GetBytes(ctx context.Context, name string, opts ...jetstream.GetObjectOpt) ([]byte, error)
}

// Open reads the manifest of dataset name. A dataset without one (never
// pushed, removed, or still being pushed) is ErrNotFound. JetStream being
// unavailable for a while (503: its servers electing a leader, one
// restarting) is retried until ctx ends.
func Open(ctx context.Context, js jetstream.JetStream, name string) (*Remote, error) {
	if err := dataset.ValidName(name); err != nil {
		return nil, err
	}
	wait := 100 * time.Millisecond
	for {
		r, err := open(ctx, js, name)
		if err == nil || !transient(err) {
			return r, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// transient: JetStream answered that it is unavailable for now (not that
// it is not enabled at all), or did not answer in time.
func transient(err error) bool {
	var ae *jetstream.APIError
	if errors.As(err, &ae) {
		return ae.Code == 503 && ae.ErrorCode != jetstream.JSErrCodeJetStreamNotEnabled && ae.ErrorCode != jetstream.JSErrCodeJetStreamNotEnabledForAccount
	}
	return errors.Is(err, nats.ErrTimeout)
}

func open(ctx context.Context, js jetstream.JetStream, name string) (*Remote, error) {
	store, err := openBucket(ctx, js, false)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("%w: %q: no dataset has been pushed to this cluster (`maas data push %s PATH --kind mnist`)", ErrNotFound, name, name)
		}
		return nil, err
	}
	b, err := store.GetBytes(ctx, ManifestObject(name))
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("%w: %q is not in bucket %s (push it with `maas data push %s PATH`; `maas data ls` lists the datasets)", ErrNotFound, name, wire.DataBucket, name)
	}
	if err != nil {
		return nil, explain(js, fmt.Errorf("read %s: %w", ManifestObject(name), err))
	}
	m, digest, err := parseManifest(name, b)
	if err != nil {
		return nil, err
	}
	return &Remote{Manifest: m, Digest: digest, js: js, store: store}, nil
}

// SplitOptions tune Remote.Split.
type SplitOptions struct {
	// CacheDir is where fetched shards are kept, under
	// <name>/<manifest digest>/<split>/; empty keeps them in memory only.
	CacheDir string
	// FetchTimeout bounds the fetch of one shard (default 5 minutes).
	FetchTimeout time.Duration
	// Logger hears of cache files that could not be written (the shard is
	// then used from memory).
	Logger *zap.Logger
}

// DefaultCacheDir is the shard cache of this user: <user cache
// dir>/maas/data (on Linux $XDG_CACHE_HOME or ~/.cache).
func DefaultCacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("datastore: no cache directory (%w); give one with --cache-dir", err)
	}
	return filepath.Join(dir, "maas", "data"), nil
}

// Split returns split s as a dataset whose shards load on first use by
// Batch: from the cache directory when the cached file's SHA-256 matches
// the manifest, else from the bucket (and then cached). A shard fetched
// from the bucket whose bytes do not match the manifest is an ErrDigest
// error. ctx bounds every fetch of the dataset's shards (give the
// lifetime of whoever reads it, e.g. the member's); each fetch also ends
// after o.FetchTimeout.
func (r *Remote) Split(ctx context.Context, s dataset.Split, o SplitOptions) (*dataset.Dataset, error) {
	if s != dataset.Train && s != dataset.Test {
		return nil, fmt.Errorf("datastore: split %v", s)
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	l := &loader{ctx: ctx, r: r, split: s, o: o}
	if o.CacheDir != "" {
		l.dir = filepath.Join(o.CacheDir, r.Name, r.Digest[:16], s.String())
	}
	sp := r.Manifest.Split(s)
	return dataset.NewSharded(r.Name+"-"+s.String(), sp.N, r.C, r.H, r.W, r.Classes, r.ShardSamples, l)
}

// loader loads the shards of one split of a Remote.
type loader struct {
	ctx   context.Context // bounds every fetch
	r     *Remote
	split dataset.Split
	o     SplitOptions
	dir   string // the split's cache directory; "" for none
}

var _ dataset.ShardLoader = (*loader)(nil)

// LoadShard returns shard i from the cache or the bucket.
func (l *loader) LoadShard(i int) (pixels, labels []uint8, err error) {
	sh := l.r.Manifest.Split(l.split).Shards[i]
	want := ShardHeader{C: l.r.C, H: l.r.H, W: l.r.W, First: sh.First, Count: sh.Count}
	path := ""
	if l.dir != "" {
		path = filepath.Join(l.dir, fmt.Sprintf("%05d", i))
		if b, err := os.ReadFile(path); err == nil && digest(b) == sh.SHA256 {
			return DecodeShard(b, want)
		}
	}
	ctx, cancel := context.WithTimeout(l.ctx, l.o.FetchTimeout)
	defer cancel()
	b, err := l.r.store.GetBytes(ctx, sh.Object)
	if err != nil {
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return nil, nil, fmt.Errorf("%w: %s is missing from bucket %s: dataset %s was removed or is being pushed again", ErrNotFound, sh.Object, wire.DataBucket, l.r.Name)
		}
		if errors.Is(err, jetstream.ErrDigestMismatch) {
			return nil, nil, fmt.Errorf("%w: %s: %v; push dataset %s again", ErrDigest, sh.Object, err, l.r.Name)
		}
		return nil, nil, explain(l.r.js, fmt.Errorf("fetch %s: %w", sh.Object, err))
	}
	if got := digest(b); got != sh.SHA256 {
		return nil, nil, fmt.Errorf("%w: %s in bucket %s has SHA-256 %s, its manifest says %s: the object was changed after the push; push dataset %s again",
			ErrDigest, sh.Object, wire.DataBucket, got, sh.SHA256, l.r.Name)
	}
	pixels, labels, err = DecodeShard(b, want)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", sh.Object, err)
	}
	if path != "" {
		if err := writeCache(path, b); err != nil {
			l.o.Logger.Warn("cannot cache a dataset shard; using it from memory", zap.String("shard", sh.Object), zap.Error(err))
		}
	}
	return pixels, labels, nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// writeCache writes b to path through a temporary file in the same
// directory renamed into place, so that a reader never sees half a file.
func writeCache(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	_, err = f.ReadFrom(bytes.NewReader(b))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
