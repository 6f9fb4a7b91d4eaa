package testcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/maas-ml/maas/coordinator"
	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/datastore"
	"github.com/maas-ml/maas/internal/member"
	"github.com/maas-ml/maas/paramserver"
	"github.com/maas-ml/maas/tensor"
	"github.com/maas-ml/maas/worker"
)

// TestJobOnPushedDataset: a subset of MNIST pushed to the Object Store
// trains a job that names it, on two workers with caches of their own (as
// on two hosts); the coordinator sizes the epoch from the manifest and
// refuses a name it cannot find, and rank 0 evaluates on the pushed test
// split.
func TestJobOnPushedDataset(t *testing.T) {
	mnistOrSkip(t)
	s := StartNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	js, err := jetstream.New(Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	mnist, _ := dataset.DefaultMNISTDir()
	if _, err := datastore.Push(ctx, js, "mnist-3k", "mnist", mnist, datastore.PushOptions{ShardSamples: 1000, Limit: 3000}); err != nil {
		t.Fatal(err)
	}
	if _, err := datastore.Push(ctx, js, "cifar", "cifar10", cifarDir(t), datastore.PushOptions{}); err != nil {
		t.Fatal(err)
	}

	cfg := coordinator.DefaultConfig()
	cfg.ID, cfg.RaftAddr, cfg.HTTPAddr, cfg.DataDir, cfg.Bootstrap = "c1", "127.0.0.1:0", "127.0.0.1:0", filepath.Join(t.TempDir(), "c1"), true
	node, err := coordinator.Open(cfg, Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	if err := node.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	base := "http://" + node.HTTPAddr()
	b := tensor.NewGo(1)
	defer b.Close()
	mctx, stop := context.WithCancel(ctx)
	defer stop()
	ps := paramserver.NewAgent(Connect(t, s), member.Config{ID: "ps-1"}, paramserver.DefaultConfig())
	go ps.Run(mctx, Connect(t, s))
	caches := []string{t.TempDir(), t.TempDir()}
	for i, dir := range caches {
		wc := worker.DefaultConfig()
		wc.Backend, wc.CacheDir = b, dir
		w := worker.NewAgent(Connect(t, s), member.Config{ID: fmt.Sprintf("w-%d", i), Threads: 1}, wc)
		go w.Run(mctx)
	}

	named := strings.Replace(strings.Replace(e2eSpec, "kind: mnist", "name: mnist-3k", 1), "batch_size: 600", "batch_size: 300", 1)
	for _, c := range []struct{ spec, field, msg string }{
		{strings.Replace(named, "mnist-3k", "mnist-none", 1), "dataset.name", "mnist-none"},
		{strings.Replace(named, "name: mnist-3k", "name: mnist-3k\n  path: /data/mnist", 1), "dataset.path", "mutually exclusive"},
		{strings.Replace(named, "name: mnist-3k", "name: cifar\n  kind: mnist", 1), "dataset.kind", "pushed as cifar10"},
		{strings.Replace(named, "name: mnist-3k", "name: cifar", 1), "model.input", "cifar10 samples are [3 32 32]"},
	} {
		var e api.Error
		if code := httpJSON(t, "POST", base+"/v1/jobs", api.SubmitRequest{Spec: c.spec, Workers: 2}, &e); code != 400 || e.Field != c.field || !strings.Contains(e.Error, c.msg) {
			t.Errorf("submit: %d %+v; want 400 naming %s", code, e, c.field)
		}
	}

	var sub api.SubmitResponse
	if code := httpJSON(t, "POST", base+"/v1/jobs", api.SubmitRequest{Spec: named, Workers: 2}, &sub); code != 201 {
		t.Fatalf("submit: %d", code)
	}
	var st api.JobStatus
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		httpJSON(t, "GET", base+"/v1/jobs/"+sub.ID, nil, &st)
		if api.Terminal(st.State) {
			break
		}
	}
	if st.State != api.JobSucceeded {
		t.Fatalf("job ended %s: %s", st.State, st.Reason)
	}
	if st.StepsPerEpoch != 10 || st.TotalSteps != 10 {
		t.Errorf("%d steps per epoch, %d in all; want 3000/300 = 10 from the manifest", st.StepsPerEpoch, st.TotalSteps)
	}
	if st.Model == nil || st.Model.Metrics["test_accuracy"] <= 0.3 {
		t.Fatalf("published model %+v; want test metrics from the pushed test split", st.Model)
	}
	t.Logf("job %s: %d steps on the pushed dataset, test accuracy %.3f", st.ID, st.TotalSteps, st.Model.Metrics["test_accuracy"])
	tests := 0
	for i, dir := range caches {
		train, _ := filepath.Glob(filepath.Join(dir, "mnist-3k", "*", "train", "*"))
		test, _ := filepath.Glob(filepath.Join(dir, "mnist-3k", "*", "test", "*"))
		if len(train) != 3 {
			t.Errorf("worker %d cached train shards %v, want the 3 it read from", i, train)
		}
		tests += len(test)
	}
	if tests != 3 {
		t.Errorf("%d test shards cached, want the 3 of rank 0's evaluation", tests)
	}
}

// cifarDir writes a CIFAR-10 set of one record per batch file.
func cifarDir(t *testing.T) string {
	dir := t.TempDir()
	for _, name := range []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"} {
		if err := os.WriteFile(filepath.Join(dir, name), append([]byte{1}, make([]byte, 3072)...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
