package datastore

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/maas-ml/maas/internal/dataset"
)

// manifestVersion is the Manifest.Version this package writes and reads.
const manifestVersion = 1

// ManifestObject is the name of the manifest object of dataset name.
func ManifestObject(name string) string { return name + "/manifest.json" }

// ShardObject is the name of shard i of a split of dataset name, e.g.
// mnist/train/00003.
func ShardObject(name string, split dataset.Split, i int) string {
	return fmt.Sprintf("%s/%s/%05d", name, split, i)
}

// Manifest describes a pushed dataset; it is the object
// <name>/manifest.json, written after every shard.
type Manifest struct {
	Version int    `json:"version"`
	Name    string `json:"name"`
	// Kind is the dataset kind the data was read as: mnist or cifar10.
	Kind    string `json:"kind"`
	C       int    `json:"c"`
	H       int    `json:"h"`
	W       int    `json:"w"`
	Classes int    `json:"classes"`
	// ShardSamples is the samples per shard (the last of a split holds
	// the rest).
	ShardSamples int       `json:"shard_samples"`
	Pushed       time.Time `json:"pushed"`
	Train        Split     `json:"train"`
	Test         Split     `json:"test"`
}

// Split is one split of a pushed dataset.
type Split struct {
	N      int     `json:"n"`
	Shards []Shard `json:"shards"`
}

// Shard is one shard object: samples First … First+Count−1 of its split.
type Shard struct {
	Object string `json:"object"`
	First  int    `json:"first"`
	Count  int    `json:"count"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"` // hex
}

// Split returns the manifest's split s.
func (m *Manifest) Split(s dataset.Split) *Split {
	if s == dataset.Test {
		return &m.Test
	}
	return &m.Train
}

// Shards is the number of shards of both splits.
func (m *Manifest) Shards() int { return len(m.Train.Shards) + len(m.Test.Shards) }

// Bytes is the size of every shard of both splits.
func (m *Manifest) Bytes() int64 {
	var n int64
	for _, sp := range []*Split{&m.Train, &m.Test} {
		for _, s := range sp.Shards {
			n += s.Bytes
		}
	}
	return n
}

// Validate checks that the manifest describes shards this package can
// read: known kind and version, positive shape, and per split contiguous
// shards of ShardSamples samples (the last holding the rest) named as
// ShardObject names them.
func (m *Manifest) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: manifest of dataset %q: %s", ErrFormat, m.Name, fmt.Sprintf(format, args...))
	}
	if m.Version != manifestVersion {
		return bad("version %d; this maas reads version %d (push the dataset again with this version)", m.Version, manifestVersion)
	}
	if err := dataset.ValidName(m.Name); err != nil {
		return bad("%v", err)
	}
	if m.Kind != "mnist" && m.Kind != "cifar10" {
		return bad("kind %q; want mnist or cifar10", m.Kind)
	}
	if m.C <= 0 || m.H <= 0 || m.W <= 0 || m.C*m.H*m.W > 1<<24 || m.Classes < 1 || m.Classes > 256 || m.ShardSamples <= 0 {
		return bad("shape %dx%dx%d, %d classes, %d samples per shard", m.C, m.H, m.W, m.Classes, m.ShardSamples)
	}
	ss := m.C * m.H * m.W
	for _, s := range []dataset.Split{dataset.Train, dataset.Test} {
		sp := m.Split(s)
		if sp.N < 0 || len(sp.Shards) != (sp.N+m.ShardSamples-1)/m.ShardSamples {
			return bad("%s: %d samples in %d shards of %d", s, sp.N, len(sp.Shards), m.ShardSamples)
		}
		for i, sh := range sp.Shards {
			want := Shard{Object: ShardObject(m.Name, s, i), First: i * m.ShardSamples, Count: min(m.ShardSamples, sp.N-i*m.ShardSamples)}
			want.Bytes, want.SHA256 = shardSize(want.Count, ss), sh.SHA256
			if sh != want {
				return bad("%s shard %d is %+v, want %+v", s, i, sh, want)
			}
			if b, err := hex.DecodeString(sh.SHA256); err != nil || len(b) != sha256.Size {
				return bad("%s shard %d: sha256 %q is not a hex SHA-256", s, i, sh.SHA256)
			}
		}
	}
	return nil
}

// parseManifest decodes and validates a manifest object and returns its
// digest (hex SHA-256 of its bytes).
func parseManifest(name string, b []byte) (*Manifest, string, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, "", fmt.Errorf("%w: manifest of dataset %q: %v", ErrFormat, name, err)
	}
	if m.Name != name {
		return nil, "", fmt.Errorf("%w: manifest %s names dataset %q", ErrFormat, ManifestObject(name), m.Name)
	}
	if err := m.Validate(); err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(b)
	return &m, hex.EncodeToString(sum[:]), nil
}
