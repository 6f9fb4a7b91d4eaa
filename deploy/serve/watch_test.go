package serve

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/maas-ml/maas/internal/modeldir"
	"github.com/maas-ml/maas/internal/testcluster"
	"github.com/maas-ml/maas/internal/wire"
)

// putVersion stores a version's files under prefix in the models bucket,
// as a worker does.
func putVersion(t *testing.T, ctx context.Context, store jetstream.ObjectStore, prefix string, specYAML, weights []byte) {
	t.Helper()
	for name, b := range map[string][]byte{modeldir.SpecFile: specYAML, modeldir.WeightsFile: weights} {
		if _, err := store.Put(ctx, jetstream.ObjectMeta{Name: prefix + name}, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
}

// announce publishes a version as the coordinator does.
func announce(t *testing.T, nc *nats.Conn, version int, prefix string) {
	t.Helper()
	b, err := wire.Encode(&wire.ModelPublished{V: wire.Version, Name: "tiny", Version: version, Job: prefix,
		Bucket: wire.ModelBucket, Prefix: prefix, Files: []string{modeldir.WeightsFile, modeldir.SpecFile}})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(wire.SubjModelPublished, b); err != nil {
		t.Fatal(err)
	}
}

// TestWatchPublished: versions announced on NATS are fetched from the
// Object Store and served; a corrupt one is counted and changes nothing.
func TestWatchPublished(t *testing.T) {
	ns := testcluster.StartNATS(t)
	nc := testcluster.Connect(t, ns)
	ts := newTestServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: wire.ModelBucket})
	if err != nil {
		t.Fatal(err)
	}
	v1, v2 := newArtifact(t, ts.be, 1, nil), newArtifact(t, ts.be, 2, nil)
	putVersion(t, ctx, store, "job-1/", v1.specYAML, v1.weights)
	putVersion(t, ctx, store, "job-2/", v2.specYAML, v2.weights)
	putVersion(t, ctx, store, "job-3/", v2.specYAML, v2.weights[:100])

	wctx, stop := context.WithCancel(ctx)
	watched := make(chan error, 1)
	go func() { watched <- ts.WatchPublished(wctx, nc) }()
	defer func() {
		stop()
		if err := <-watched; err != nil {
			t.Errorf("WatchPublished: %v", err)
		}
	}()

	// Announce until the watcher, which subscribes asynchronously, has
	// loaded the version (a repeat is ignored).
	served := func(version int, prefix string) {
		t.Helper()
		waitFor(t, "version "+prefix, func() bool {
			announce(t, nc, version, prefix)
			for _, m := range ts.Models() {
				if m.Name == "tiny" && m.Versions[0] == version {
					return true
				}
			}
			time.Sleep(20 * time.Millisecond)
			return false
		})
	}
	served(1, "job-1/")
	served(2, "job-2/")
	resp := ts.infer(t, "/v2/models/tiny/infer", inferBody([]int{1, 784}, randomInput(1, 1), nil))
	if resp.ModelVersion != "2" {
		t.Errorf("serving version %s, want 2", resp.ModelVersion)
	}

	announce(t, nc, 3, "job-3/")
	failures := ts.met.loadFailures.WithLabelValues("tiny")
	waitFor(t, "the corrupt version to fail", func() bool { return testutil.ToFloat64(failures) >= 1 })
	if code, _ := ts.do(t, http.MethodGet, "/v2/health/ready", ""); code != http.StatusOK {
		t.Errorf("ready %d after a failed version", code)
	}
	resp = ts.infer(t, "/v2/models/tiny/infer", inferBody([]int{1, 784}, randomInput(1, 1), nil))
	if resp.ModelVersion != "2" {
		t.Errorf("serving version %s after a failed version 3, want 2", resp.ModelVersion)
	}
}
