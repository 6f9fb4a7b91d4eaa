package testcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/maas-ml/maas/coordinator"
	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/member"
	"github.com/maas-ml/maas/internal/wire"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/paramserver"
	"github.com/maas-ml/maas/tensor"
	"github.com/maas-ml/maas/worker"
)

// e2eSpec is the tiny CNN that tests which train for real share.
var e2eSpec = func() string {
	b, err := os.ReadFile("../../testdata/specs/tiny-cnn.yaml")
	if err != nil {
		panic(err)
	}
	return string(b)
}()

func httpJSON(t *testing.T, method, url string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// TestCoordinatorRunsJob: a one-node Raft coordinator on disk schedules a
// job on registered members over NATS; it trains to completion, the model
// is published to the Object Store and the model index.
func TestCoordinatorRunsJob(t *testing.T) {
	mnistOrSkip(t)
	s := StartNATS(t)
	cfg := coordinator.DefaultConfig()
	cfg.ID, cfg.RaftAddr, cfg.HTTPAddr, cfg.DataDir, cfg.Bootstrap = "c1", "127.0.0.1:0", "127.0.0.1:0", filepath.Join(t.TempDir(), "c1"), true
	node, err := coordinator.Open(cfg, Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	base := "http://" + node.HTTPAddr()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := node.WaitForLeader(wctx); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := tensor.NewGo(1)
	defer b.Close()
	ps := paramserver.NewAgent(Connect(t, s), member.Config{ID: "ps-1"}, paramserver.DefaultConfig())
	go ps.Run(ctx, Connect(t, s))
	device := fmt.Sprintf("cpu (%s, %d threads)", b.Name(), b.Threads())
	var devSteps atomic.Int64
	for i := range 2 {
		wc := worker.DefaultConfig()
		wc.Backend = b
		if i == 1 { // its steps go through a DeviceTrainer, as on a GPU
			wc.NewDeviceTrainer = func(spec nn.ModelSpec, batch int) (worker.DeviceTrainer, error) {
				return newHostDeviceTrainer(spec, b, &devSteps)
			}
		}
		w := worker.NewAgent(Connect(t, s), member.Config{ID: fmt.Sprintf("w-%d", i), Threads: 1, Device: device}, wc)
		go w.Run(ctx)
	}

	// A malformed spec is refused with the field named.
	var e api.Error
	if code := httpJSON(t, "POST", base+"/v1/jobs", api.SubmitRequest{Spec: "name: x\nbatch_size: -1\n"}, &e); code != 400 || e.Field == "" {
		t.Fatalf("bad spec: %d %+v", code, e)
	}
	if code := httpJSON(t, "GET", base+"/v1/jobs/nope", nil, &e); code != 404 {
		t.Fatalf("unknown job: %d", code)
	}
	var sub api.SubmitResponse
	if code := httpJSON(t, "POST", base+"/v1/jobs", api.SubmitRequest{Spec: e2eSpec + "checkpoint_every: 30\n", Workers: 2}, &sub); code != 201 {
		t.Fatalf("submit: %d", code)
	}
	var st api.JobStatus
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		httpJSON(t, "GET", base+"/v1/jobs/"+sub.ID, nil, &st)
		if api.Terminal(st.State) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.State != api.JobSucceeded {
		t.Fatalf("job ended %s: %s", st.State, st.Reason)
	}
	if st.Model == nil || st.Model.Version != 1 || st.Model.Metrics["test_accuracy"] < 0.8 {
		t.Fatalf("published model: %+v", st.Model)
	}
	t.Logf("job %s: %d steps, model %s v%d, test accuracy %.3f", st.ID, st.TotalSteps, st.Model.Name, st.Model.Version, st.Model.Metrics["test_accuracy"])
	// The job's curves: a point a step (100 steps), the epoch's training
	// loss and accuracy, and the model after it on the test split, which
	// is the published model (the same θ).
	var jm api.JobMetrics
	if code := httpJSON(t, "GET", base+"/v1/jobs/"+sub.ID+"/metrics", nil, &jm); code != 200 || len(jm.Points) != int(st.TotalSteps) || len(jm.Epochs) != 1 {
		t.Fatalf("metrics: %d, %d points, %d epochs; want %d points, 1 epoch", code, len(jm.Points), len(jm.Epochs), st.TotalSteps)
	}
	ep := jm.Epochs[0]
	if ep.Epoch != 0 || ep.Step != st.TotalSteps-1 || !(ep.TrainLoss > 0) || !(ep.TrainAccuracy > 0.5) || ep.Samples != 60000 {
		t.Errorf("epoch record %+v: want epoch 0 ending at step %d, its training loss and accuracy over 60,000 samples", ep, st.TotalSteps-1)
	}
	if ep.Eval == nil || ep.Eval.Set != "test" || math.Abs(ep.Eval.Accuracy-st.Model.Metrics["test_accuracy"]) > 1e-12 || math.Abs(ep.Eval.Loss-st.Model.Metrics["test_loss"]) > 1e-12 {
		t.Errorf("the epoch's evaluation %+v, want the published model's test metrics %v", ep.Eval, st.Model.Metrics)
	}
	resp, err := http.Get(base + "/v1/models/tiny-cnn/versions/1/files/model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	blob, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(blob) < 1000 {
		t.Fatalf("model file: %d, %d bytes", resp.StatusCode, len(blob))
	}
	var cs api.ClusterStatus
	httpJSON(t, "GET", base+"/v1/cluster", nil, &cs)
	if cs.Leader != "c1" || len(cs.Workers) != 2 || len(cs.Servers) != 1 {
		t.Fatalf("cluster status %+v", cs)
	}
	if devSteps.Load() == 0 {
		t.Fatal("the worker with a DeviceTrainer computed no step on it")
	}
	for _, w := range cs.Workers { // as registered; a server that sends none shows none
		if w.Device != device || cs.Servers[0].Device != "" {
			t.Fatalf("cluster status lists worker %s on %q and the server on %q, want %q and none", w.ID, w.Device, cs.Servers[0].Device, device)
		}
	}

	// Checkpoints every 30 steps: 30, 60, 90 stored; the coordinator keeps
	// the last two and the store no longer has step 30's object.
	var ckpts []coordinator.CheckpointRecord
	node.FSM().Read(func(st *coordinator.State) { ckpts = append(ckpts, st.Jobs[sub.ID].Checkpoints...) })
	if len(ckpts) != 2 || ckpts[0].Step != 60 || ckpts[1].Step != 90 {
		t.Fatalf("committed checkpoints %+v, want steps 60 and 90", ckpts)
	}
	js, err := jetstream.New(Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	store, err := js.ObjectStore(ctx, wire.CheckpointBucket)
	if err != nil {
		t.Fatal(err)
	}
	data, err := store.GetBytes(ctx, ckpts[1].Objects[0])
	if err != nil {
		t.Fatal(err)
	}
	theta, opt, step, optStep, err := paramserver.DecodeCheckpoint(data)
	if err != nil || step != 90 || optStep != 90 || len(theta) == 0 || len(opt["exp_avg"]) != len(theta) || len(opt["exp_avg_sq"]) != len(theta) {
		t.Fatalf("checkpoint of step 90: step %d, optimizer step %d, %d params, state %d/%d, err %v", step, optStep, len(theta), len(opt["exp_avg"]), len(opt["exp_avg_sq"]), err)
	}
	waitDeleted := time.Now().Add(5 * time.Second)
	for {
		if _, err := store.GetInfo(ctx, fmt.Sprintf("%s/30/0.safetensors", sub.ID)); err != nil {
			break
		}
		if time.Now().After(waitDeleted) {
			t.Fatal("the step-30 checkpoint was not deleted after two newer ones were committed")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A dataset that cannot be read fails the job with that reason.
	bad := strings.Replace(e2eSpec, "kind: mnist", "kind: mnist\n  path: /nonexistent/mnist", 1)
	if code := httpJSON(t, "POST", base+"/v1/jobs", api.SubmitRequest{Spec: bad, Workers: 1}, &sub); code != 201 {
		t.Fatalf("submit: %d", code)
	}
	deadline = time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		httpJSON(t, "GET", base+"/v1/jobs/"+sub.ID, nil, &st)
		if api.Terminal(st.State) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.State != api.JobFailed || !strings.Contains(st.Reason, "/nonexistent/mnist") {
		t.Fatalf("job with unreadable data ended %s: %q", st.State, st.Reason)
	}
}

// hostDeviceTrainer is a real, in-memory worker.DeviceTrainer for tests:
// its own copy of the model, stepped on a CPU backend, as a GPU keeps it
// in its memory.
type hostDeviceTrainer struct {
	m     *nn.Model
	loss  *nn.SoftmaxCrossEntropy
	steps *atomic.Int64
}

var _ worker.DeviceTrainer = (*hostDeviceTrainer)(nil)

func newHostDeviceTrainer(spec nn.ModelSpec, b tensor.Backend, steps *atomic.Int64) (*hostDeviceTrainer, error) {
	m, err := nn.Build(spec, b)
	if err != nil {
		return nil, err
	}
	out := m.OutShape()
	return &hostDeviceTrainer{m: m, loss: nn.NewSoftmaxCrossEntropy(b, out[len(out)-1]), steps: steps}, nil
}

func (d *hostDeviceTrainer) SetParams(p []float32) error { copy(d.m.Params, p); return nil }
func (d *hostDeviceTrainer) Grads(g []float32) error     { copy(g, d.m.Grads); return nil }
func (d *hostDeviceTrainer) Close() error                { return nil }

func (d *hostDeviceTrainer) Step(x []float32, y []int32, n int) (float32, int, error) {
	d.steps.Add(1)
	d.m.ZeroGrad()
	l := d.loss.Forward(d.m.Forward(x, n, true), y, n)
	d.m.Backward(d.loss.Backward(), n)
	return l, d.loss.Correct(), nil
}
