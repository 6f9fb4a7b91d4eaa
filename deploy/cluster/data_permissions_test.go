package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/datastore"
	"github.com/maas-ml/maas/internal/wire"
)

func TestOperatorPermissions(t *testing.T) {
	p := OperatorPermissions()
	for subject, want := range map[string]bool{
		"$O.maas-data.C.x": true, "$JS.maas.API.STREAM.CREATE.OBJ_maas-data": true, "$JS.maas.API.STREAM.PURGE.OBJ_maas-data": true,
		"$JS.maas.API.STREAM.INFO.OBJ_maas-models": true, "$O.maas-models.C.x": false, "$O.maas-checkpoints.C.x": false,
		"$JS.maas.API.STREAM.DELETE.OBJ_maas-data": false, "maas.ctl.member.w": false, "maas.assign.j": false, "_INBOX.x": false,
	} {
		if got := allowed(p.Publish, subject); got != want {
			t.Errorf("the operator may publish %s: %v, want %v", subject, got, want)
		}
	}
	if !allowed(p.Subscribe, "_INBOX.x.y") || allowed(p.Subscribe, "maas.param.j") || p.AllowResponses {
		t.Errorf("operator subscribe %v, responses %v", p.Subscribe, p.AllowResponses)
	}
}

// tinyCIFAR writes a CIFAR-10 set of one record per batch file.
func tinyCIFAR(t *testing.T) string {
	dir := t.TempDir()
	for _, name := range []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"} {
		if err := os.WriteFile(filepath.Join(dir, name), append([]byte{3}, make([]byte, 3072)...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// dataPermissions checks who may read and write the data bucket: the
// operator pushes (and reads models), workers and coordinators read,
// serve does neither, and a worker's push is refused as ErrPermission.
func dataPermissions(t *testing.T, op, worker, coord, srv *natsUserConn) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := func(c *natsUserConn) jetstream.JetStream {
		j, err := wire.JetStream(c.Conn)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	dir := tinyCIFAR(t)
	for range 2 { // a re-push deletes and lists too
		if _, err := datastore.Push(ctx, js(op), "tiny", "cifar10", dir, datastore.PushOptions{ShardSamples: 2}); err != nil {
			t.Fatalf("the operator pushes a dataset: %v", err)
		}
	}
	if ms, err := datastore.List(ctx, js(op)); err != nil || len(ms) != 1 {
		t.Fatalf("the operator lists the datasets: %v, %v", ms, err)
	}
	for _, reader := range []*natsUserConn{worker, coord} {
		r, err := datastore.Open(ctx, js(reader), "tiny")
		if err != nil {
			t.Fatalf("%s reads the manifest: %v", reader.Opts.Name, err)
		}
		d, err := r.Split(t.Context(), dataset.Train, datastore.SplitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Batch([]int{0, 4}, dataset.Normalization{}, make([]float32, 2*3072), make([]int32, 2)); err != nil {
			t.Errorf("%s reads shards: %v", reader.Opts.Name, err)
		}
	}
	if _, err := js(op).ObjectStore(ctx, wire.ModelBucket); err != nil {
		t.Errorf("the operator opens the model bucket: %v", err)
	}

	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	defer pcancel()
	_, err := datastore.Push(pctx, js(worker), "tiny", "cifar10", dir, datastore.PushOptions{})
	if !errors.Is(err, datastore.ErrPermission) {
		t.Errorf("a worker pushes a dataset: %v; want ErrPermission", err)
	}
	worker.denied(t, `Publish to "$O.maas-data.`)
	store, err := js(worker).ObjectStore(ctx, wire.DataBucket)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer wcancel()
	if _, err := store.PutBytes(wctx, "tiny/train/00000", []byte("forged")); err == nil {
		t.Error("a worker overwrote a shard")
	}
	worker.denied(t, `Publish to "$O.maas-data.C.`)
	sctx, scancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer scancel()
	if _, err := datastore.Open(sctx, js(srv), "tiny"); err == nil {
		t.Error("serve read the data bucket")
	}
	srv.denied(t, fmt.Sprintf(`Publish to "$JS.API.STREAM.INFO.OBJ_%s"`, wire.DataBucket))
}
