package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/modeldir"
	"github.com/maas-ml/maas/nn/safetensors"
)

// fakeCoordinator is an in-memory stand-in for a coordinator's HTTP API,
// scripted per test.
type fakeCoordinator struct {
	*httptest.Server

	mu sync.Mutex // guards the fields below
	// states are the successive answers to GET /v1/jobs/j1, the last one
	// repeating; a state "" answers 503 (no leader).
	states    []api.JobStatus
	polls     int
	onPoll    func(polls int)
	submitted []api.SubmitRequest
	// logs are revealed one more per call; Done once all are.
	logs       []api.LogEntry
	logCalls   int
	metrics    api.JobMetrics
	model      api.ModelVersion
	files      map[string]string
	brokenFile string // its download stops half-way
}

var (
	t0      = time.Now().Add(-time.Hour)
	baseJob = api.JobStatus{ID: "j1", Name: "mnist", State: api.JobRunning, Submitted: t0, Started: t0,
		Workers: 2, ParameterServers: 1, Members: []string{"w1", "w2"}, Servers: []string{"ps1"}, Epoch: 4,
		Step: 120, CommittedStep: 100, TotalSteps: 600, StepsPerEpoch: 60, Epochs: 10,
		Loss: 0.25, Accuracy: 0.9, SamplesPerSec: 3400}
)

func newFakeCoordinator(t *testing.T) *fakeCoordinator {
	t.Helper()
	f := &fakeCoordinator{
		states: []api.JobStatus{baseJob},
		model: api.ModelVersion{Name: "mnist", Version: 3, Job: "j1", Created: t0,
			Files: []string{"model.safetensors", "model.yaml"}, Metrics: map[string]float64{"accuracy": 0.99, "loss": 0.031}},
		files: map[string]string{"model.safetensors": "weights", "model.yaml": "name: mnist\n"},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		var req api.SubmitRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			reply(w, http.StatusBadRequest, api.Error{Error: err.Error()})
			return
		}
		if strings.Contains(req.Spec, "epochs: -1") {
			reply(w, http.StatusBadRequest, api.Error{Error: "must be positive", Field: "epochs"})
			return
		}
		f.mu.Lock()
		f.submitted = append(f.submitted, req)
		f.mu.Unlock()
		reply(w, http.StatusCreated, api.SubmitResponse{ID: "j1"})
	})
	mux.HandleFunc("GET /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, []api.JobStatus{baseJob})
	})
	mux.HandleFunc("GET /v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !f.known(w, r) {
			return
		}
		f.mu.Lock()
		js := f.states[min(f.polls, len(f.states)-1)]
		f.polls++
		polls, onPoll := f.polls, f.onPoll
		f.mu.Unlock()
		if onPoll != nil {
			onPoll(polls)
		}
		if js.State == "" {
			reply(w, http.StatusServiceUnavailable, api.Error{Error: "no leader"})
			return
		}
		reply(w, http.StatusOK, js)
	})
	mux.HandleFunc("POST /v1/jobs/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		if !f.known(w, r) {
			return
		}
		js := baseJob
		js.State = api.JobCancelled
		reply(w, http.StatusOK, js)
	})
	mux.HandleFunc("GET /v1/jobs/{id}/logs", func(w http.ResponseWriter, r *http.Request) {
		if !f.known(w, r) {
			return
		}
		since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
		f.mu.Lock()
		f.logCalls++
		visible := f.logs[:min(f.logCalls, len(f.logs))]
		f.mu.Unlock()
		page := api.LogPage{Entries: []api.LogEntry{}, Done: len(visible) == len(f.logs)}
		for _, e := range visible {
			if e.Seq > since {
				page.Entries = append(page.Entries, e)
			}
		}
		reply(w, http.StatusOK, page)
	})
	mux.HandleFunc("GET /v1/jobs/{id}/metrics", func(w http.ResponseWriter, r *http.Request) {
		if !f.known(w, r) {
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		reply(w, http.StatusOK, f.metrics)
	})
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		old := f.model
		old.Version, old.Metrics = 2, nil
		reply(w, http.StatusOK, []api.ModelVersion{f.model, old})
	})
	model := func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != f.model.Name {
			reply(w, http.StatusNotFound, api.Error{Error: "model " + r.PathValue("name") + " not found"})
			return
		}
		reply(w, http.StatusOK, f.model)
	}
	mux.HandleFunc("GET /v1/models/{name}", model)
	mux.HandleFunc("GET /v1/models/{name}/versions/{v}", model)
	mux.HandleFunc("GET /v1/models/{name}/versions/{v}/files/{file}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		body, ok := f.files[name]
		if !ok {
			reply(w, http.StatusNotFound, api.Error{Error: "no file " + name})
			return
		}
		if name == f.brokenFile {
			// Promise more than is sent: the client sees the body end early.
			w.Header().Set("Content-Length", strconv.Itoa(2*len(body)))
			io.WriteString(w, body)
			return
		}
		io.WriteString(w, body)
	})
	mux.HandleFunc("GET /v1/cluster", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, api.ClusterStatus{Leader: "c1",
			Nodes: []api.Node{{ID: "c1", RaftAddr: "10.0.0.1:7000", HTTPAddr: "10.0.0.1:7070", Leader: true, Voter: true, State: "Leader", Term: 3, AppliedIndex: 42},
				{ID: "c2", RaftAddr: "10.0.0.2:7000", HTTPAddr: "10.0.0.2:7070", Voter: true, State: "Follower", Term: 3, AppliedIndex: 41},
				{ID: "c3", RaftAddr: "10.0.0.3:7000", HTTPAddr: "10.0.0.3:7070", Voter: true, Error: "connection refused"}},
			Servers: []api.Member{{ID: "ps1", Kind: "paramserver", Host: "h1", State: "busy", Job: "j1", LastSeen: time.Now()}},
			Workers: []api.Member{{ID: "w1", Kind: "worker", Host: "h2", Threads: 8, Device: "NVIDIA H200 (cuda:0)", State: "idle", LastSeen: time.Now()}}})
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

// known answers 404 for any job but j1.
func (f *fakeCoordinator) known(w http.ResponseWriter, r *http.Request) bool {
	if id := r.PathValue("id"); id != "j1" {
		reply(w, http.StatusNotFound, api.Error{Error: "job " + id + " not found"})
		return false
	}
	return true
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// fastFollow makes --follow poll every millisecond and log every poll,
// as if stderr were not a terminal (tty: as if it were).
func fastFollow(t *testing.T, tty bool) {
	poll, every, grace, term := pollInterval, followLogEvery, followGrace, stderrIsTerminal
	pollInterval, followLogEvery, followGrace = time.Millisecond, 0, time.Second
	stderrIsTerminal = func() bool { return tty }
	t.Cleanup(func() { pollInterval, followLogEvery, followGrace, stderrIsTerminal = poll, every, grace, term })
}

// maas runs the maas command line args on a root holding this file's
// commands, as root.go will.
func maas(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	root := &cobra.Command{Use: "maas", SilenceUsage: true, SilenceErrors: true}
	cluster := &cobra.Command{Use: "cluster"}
	cluster.AddCommand(clusterStatusCmd(), clusterInitCmd())
	root.AddCommand(jobCmd(), modelCmd(), cluster, loginCmd(), trainCmd())
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err = root.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

func writeSpec(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "job.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const spec = "name: mnist\nepochs: 10\n"

func TestJobSubmit(t *testing.T) {
	f := newFakeCoordinator(t)
	out, _, err := maas(context.Background(), "job", "submit", "-f", writeSpec(t, spec), "--server", f.URL, "--workers", "2", "--parameter-servers", "3")
	if err != nil {
		t.Fatal(err)
	}
	if out != "j1\n" {
		t.Errorf("stdout = %q, want the id", out)
	}
	want := api.SubmitRequest{Spec: spec, Workers: 2, ParameterServers: 3}
	if len(f.submitted) != 1 || !reflect.DeepEqual(f.submitted[0], want) {
		t.Errorf("submitted %+v, want %+v", f.submitted, want)
	}

	// --init sends the weights (a file or a model directory's), --max-steps the limit.
	dir := t.TempDir()
	weights := &safetensors.File{Tensors: map[string]safetensors.Tensor{"fc1.bias": safetensors.F32([]int{2}, []float32{1, 2})}}
	if err := safetensors.WriteFile(filepath.Join(dir, modeldir.WeightsFile), weights); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, modeldir.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, init := range []string{filepath.Join(dir, modeldir.WeightsFile), dir} {
		f.submitted = nil
		if _, _, err := maas(context.Background(), "job", "submit", "-f", writeSpec(t, spec), "--server", f.URL, "--init", init, "--max-steps", "10"); err != nil {
			t.Fatal(err)
		}
		want := api.SubmitRequest{Spec: spec, MaxSteps: 10, InitWeights: raw}
		if len(f.submitted) != 1 || !reflect.DeepEqual(f.submitted[0], want) {
			t.Errorf("--init %s: submitted %+v, want %+v", init, f.submitted, want)
		}
	}
	notWeights := writeSpec(t, spec)
	if _, _, err := maas(context.Background(), "job", "submit", "-f", writeSpec(t, spec), "--server", f.URL, "--init", notWeights); err == nil || !strings.Contains(err.Error(), "--init") {
		t.Errorf("--init with a YAML file: err = %v, want one naming --init", err)
	}
	if _, _, err := maas(context.Background(), "job", "submit", "-f", writeSpec(t, spec), "--server", f.URL, "--max-steps", "-1"); err == nil || !strings.Contains(err.Error(), "--max-steps") {
		t.Errorf("--max-steps -1: err = %v, want one naming --max-steps", err)
	}

	out, _, err = maas(context.Background(), "job", "submit", "-f", writeSpec(t, spec), "--server", f.URL, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var resp api.SubmitResponse
	if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.ID != "j1" {
		t.Errorf("json output %q: %+v, %v", out, resp, err)
	}
}

func TestJobSubmitRejected(t *testing.T) {
	f := newFakeCoordinator(t)
	path := writeSpec(t, "name: x\nepochs: -1\n")
	_, _, err := maas(context.Background(), "job", "submit", "-f", path, "--server", f.URL)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "epochs: must be positive") {
		t.Errorf("err = %v, want the file and the field at fault", err)
	}
	_, _, err = maas(context.Background(), "job", "submit", "-f", filepath.Join(t.TempDir(), "missing.yaml"), "--server", f.URL)
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing spec: err = %v", err)
	}
}

func TestJobSubmitFollow(t *testing.T) {
	for _, tty := range []bool{false, true} {
		t.Run("tty="+strconv.FormatBool(tty), func(t *testing.T) {
			fastFollow(t, tty)
			f := newFakeCoordinator(t)
			queued := baseJob
			queued.State, queued.Step, queued.Loss, queued.Accuracy = api.JobQueued, 0, 0, 0
			half := baseJob
			half.Step = 300
			done := baseJob
			done.State, done.Step, done.Finished = api.JobSucceeded, 600, t0.Add(90*time.Second)
			done.Loss, done.Accuracy = 0.031, 0.991
			done.Model = &api.ModelVersion{Name: "mnist", Version: 3}
			f.states = []api.JobStatus{queued, baseJob, {}, half, done}

			out, stderr, err := maas(context.Background(), "job", "submit", "-f", writeSpec(t, spec), "--follow", "--server", f.URL)
			if err != nil {
				t.Fatalf("%v\nstderr:\n%s", err, stderr)
			}
			for _, s := range []string{"j1\n", "succeeded after 600/600 steps in 1m30s", "loss:     0.0310", "accuracy: 99.10%", "mnist:3"} {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			for _, s := range []string{"job j1: queued", "job j1: running", "job j1: succeeded"} {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			if !tty && !strings.Contains(stderr, "step 300/600  epoch 5/10  loss 0.2500  acc 90.00%  3400 samples/s  ETA ") {
				t.Errorf("stderr lacks a progress line:\n%s", stderr)
			}
		})
	}
}

func TestJobSubmitFollowFailed(t *testing.T) {
	fastFollow(t, false)
	f := newFakeCoordinator(t)
	failed := baseJob
	failed.State, failed.Reason = api.JobFailed, "worker w2 lost and no spare"
	f.states = []api.JobStatus{baseJob, failed}
	out, _, err := maas(context.Background(), "job", "submit", "-f", writeSpec(t, spec), "--follow", "--server", f.URL)
	if err == nil || !strings.Contains(err.Error(), "worker w2 lost and no spare") {
		t.Fatalf("err = %v, want the reason", err)
	}
	if !strings.Contains(out, "failed after 120/600 steps") {
		t.Errorf("stdout lacks the summary:\n%s", out)
	}

	// -o json: the final status, still failing.
	out, _, err = maas(context.Background(), "job", "submit", "-f", writeSpec(t, spec), "--follow", "-o", "json", "--server", f.URL)
	if err == nil {
		t.Fatal("no error for a failed job")
	}
	var js api.JobStatus
	if err := json.Unmarshal([]byte(out), &js); err != nil || js.State != api.JobFailed {
		t.Errorf("json output %q: %+v, %v", out, js, err)
	}
}

func TestJobFollowInterrupted(t *testing.T) {
	fastFollow(t, false)
	f := newFakeCoordinator(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.onPoll = func(n int) {
		if n == 3 {
			cancel()
		}
	}
	_, _, err := maas(ctx, "job", "submit", "-f", writeSpec(t, spec), "--follow", "--server", f.URL)
	if err == nil || !strings.Contains(err.Error(), "it keeps running") || !strings.Contains(err.Error(), "maas job status j1") {
		t.Errorf("err = %v, want how to resume", err)
	}
}

func TestJobLs(t *testing.T) {
	f := newFakeCoordinator(t)
	out, _, err := maas(context.Background(), "job", "ls", "--server", f.URL)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a header and a row:\n%s", out)
	}
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "ID NAME STATE STEP EPOCH LOSS ACC AGE" {
		t.Errorf("header = %q", lines[0])
	}
	if got := strings.Join(strings.Fields(lines[1]), " "); got != "j1 mnist running 120/600 2/10 0.2500 90.00% 1h" {
		t.Errorf("row = %q", got)
	}

	out, _, err = maas(context.Background(), "job", "ls", "--server", f.URL, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var jobs []api.JobStatus
	if err := json.Unmarshal([]byte(out), &jobs); err != nil || len(jobs) != 1 || jobs[0].ID != "j1" {
		t.Errorf("json output %q: %+v, %v", out, jobs, err)
	}

	if _, _, err := maas(context.Background(), "job", "ls", "--server", f.URL, "-o", "yaml"); err == nil || !strings.Contains(err.Error(), "table or json") {
		t.Errorf("-o yaml: err = %v", err)
	}
}

func TestJobStatus(t *testing.T) {
	f := newFakeCoordinator(t)
	out, _, err := maas(context.Background(), "job", "status", "j1", "--server", f.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"State:", "running", "2: w1, w2", "120/600 (checkpoint at 100)", "Accuracy:", "90.00%"} {
		if !strings.Contains(out, s) {
			t.Errorf("status lacks %q:\n%s", s, out)
		}
	}
	_, _, err = maas(context.Background(), "job", "status", "nope", "--server", f.URL)
	if err == nil || !strings.Contains(err.Error(), "coordinator: 404: job nope not found") || !strings.Contains(err.Error(), "maas job ls") {
		t.Errorf("err = %v, want the 404 and a hint", err)
	}
}

func TestJobLogsFollow(t *testing.T) {
	fastFollow(t, false)
	f := newFakeCoordinator(t)
	for i := range 4 {
		f.logs = append(f.logs, api.LogEntry{Seq: int64(i + 1), Time: t0, Message: "event " + strconv.Itoa(i+1)})
	}
	out, _, err := maas(context.Background(), "job", "logs", "j1", "--follow", "--server", f.URL)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("want 4 entries once each:\n%s", out)
	}
	for i, l := range lines {
		want := t0.Local().Format("2006-01-02 15:04:05") + "  event " + strconv.Itoa(i+1)
		if l != want {
			t.Errorf("line %d = %q, want %q", i, l, want)
		}
	}
}

// TestJobPlot: the curves are drawn into a PNG of three panels, in the
// first job's colour; an image name that is not .png, or a job without
// metrics, is refused naming why, and no file is left.
func TestJobPlot(t *testing.T) {
	f := newFakeCoordinator(t)
	for i := range 60 {
		f.metrics.Points = append(f.metrics.Points, api.MetricPoint{Step: int64(2*i + 1), Time: t0,
			Loss: 2 / float64(i+1), Accuracy: 1 - 1/float64(i+2), SamplesPerSec: 3000 + float64(i%5)*10})
	}
	f.metrics.Epochs = []api.EpochMetrics{{Epoch: 0, Step: 59, TrainLoss: 0.2, TrainAccuracy: 0.9}}
	dir := t.TempDir()
	out := filepath.Join(dir, "curves.png")
	if _, _, err := maas(context.Background(), "job", "plot", "j1", "-o", out, "--server", f.URL); err != nil {
		t.Fatal(err)
	}
	checkCurves(t, out)

	if _, _, err := maas(context.Background(), "job", "plot", "j1", "-o", filepath.Join(dir, "c.jpg"), "--server", f.URL); err == nil || !strings.Contains(err.Error(), ".png") {
		t.Errorf("a .jpg output: %v", err)
	}
	f.metrics = api.JobMetrics{}
	if _, _, err := maas(context.Background(), "job", "plot", "j1", "-o", filepath.Join(dir, "empty.png"), "--server", f.URL); err == nil || !strings.Contains(err.Error(), "no training metrics") {
		t.Errorf("a job without metrics: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the directory holds %d files, want the one image", len(entries))
	}
}

// checkCurves requires path to be a tall PNG of three panels with a curve
// in the first job's colour in each.
func checkCurves(t *testing.T, path string) {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	if b.Dx() < 500 || b.Dy() <= b.Dx() {
		t.Errorf("image %v: want a tall image of three panels", b)
	}
	for third := range 3 {
		found := false
		for y := b.Min.Y + third*b.Dy()/3; y < b.Min.Y+(third+1)*b.Dy()/3 && !found; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				if r, g, bl, _ := img.At(x, y).RGBA(); r>>8 == 31 && g>>8 == 119 && bl>>8 == 180 {
					found = true
					break
				}
			}
		}
		if !found {
			t.Errorf("panel %d has no curve drawn", third+1)
		}
	}
}

func TestJobCancel(t *testing.T) {
	f := newFakeCoordinator(t)
	out, _, err := maas(context.Background(), "job", "cancel", "j1", "--server", f.URL)
	if err != nil {
		t.Fatal(err)
	}
	if out != "job j1: cancelled\n" {
		t.Errorf("stdout = %q", out)
	}
}

func TestModelPull(t *testing.T) {
	f := newFakeCoordinator(t)
	dir := filepath.Join(t.TempDir(), "m")
	out, _, err := maas(context.Background(), "model", "pull", "mnist:3", "-o", dir, "--server", f.URL)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range f.files {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(b) != body {
			t.Errorf("%s = %q, %v; want %q", name, b, err, body)
		}
		if !strings.Contains(out, filepath.Join(dir, name)) {
			t.Errorf("stdout does not name %s:\n%s", name, out)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("%s holds %d entries, want the 2 files", dir, len(ents))
	}

	// The second file breaks off: nothing may be left in the directory.
	f.brokenFile = "model.yaml"
	dir = filepath.Join(t.TempDir(), "broken")
	_, _, err = maas(context.Background(), "model", "pull", "mnist", "-o", dir, "--server", f.URL)
	if err == nil || !strings.Contains(err.Error(), "model.yaml") || !strings.Contains(err.Error(), "nothing was written") {
		t.Errorf("err = %v, want the broken file named", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%s holds %v after a failed pull, want nothing", dir, ents)
	}

	_, _, err = maas(context.Background(), "model", "pull", "nope:1", "-o", dir, "--server", f.URL)
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "maas model ls") {
		t.Errorf("unknown model: err = %v", err)
	}
}

func TestModelPullBadRef(t *testing.T) {
	for _, ref := range []string{"mnist:x", "mnist:0", "mnist:", ":3", "mnist:1:2"} {
		_, _, err := maas(context.Background(), "model", "pull", ref, "-o", t.TempDir(), "--server", "127.0.0.1:1")
		if err == nil || !strings.Contains(err.Error(), "NAME:VERSION") {
			t.Errorf("%q: err = %v, want the syntax explained", ref, err)
		}
	}
}

func TestModelLs(t *testing.T) {
	f := newFakeCoordinator(t)
	// A serving endpoint that serves mnist version 3 only.
	serving := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/models/mnist" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"name":"mnist","versions":["3"]}`))
	}))
	defer serving.Close()
	out, _, err := maas(context.Background(), "model", "ls", "--server", f.URL, "--server-url", serving.URL)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[0], "SERVED") {
		t.Fatalf("want a header and two rows:\n%s", out)
	}
	if got := strings.Join(strings.Fields(lines[2]), " "); got != "mnist 3 j1 1h yes accuracy=0.99 loss=0.031" {
		t.Errorf("row = %q", got)
	}
	if got := strings.Fields(lines[1]); len(got) < 5 || got[4] != "no" {
		t.Errorf("an unserved version's row = %q", lines[1])
	}
	// No serving endpoint: SERVED is "-", the listing still works.
	out, _, err = maas(context.Background(), "model", "ls", "--server", f.URL, "--server-url", "http://127.0.0.1:1")
	if err != nil || !strings.Contains(out, " - ") {
		t.Fatalf("without a serving endpoint: %v\n%s", err, out)
	}
	out, _, err = maas(context.Background(), "model", "ls", "-o", "json", "--server", f.URL)
	var ms []api.ModelVersion
	if err != nil || json.Unmarshal([]byte(out), &ms) != nil || len(ms) != 2 {
		t.Errorf("json: %v, %q", err, out)
	}
}

func TestClusterStatus(t *testing.T) {
	f := newFakeCoordinator(t)
	out, _, err := maas(context.Background(), "cluster", "status", "--server", f.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"COORDINATORS", "PARAMETER SERVERS", "WORKERS", "DEVICE", "LAST SEEN"} {
		if !strings.Contains(out, s) {
			t.Errorf("status lacks %q:\n%s", s, out)
		}
	}
	rows := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if fs := strings.Fields(l); len(fs) > 0 {
			rows[fs[0]] = strings.Join(fs, " ")
		}
	}
	for id, want := range map[string]string{
		"c1":  "c1 10.0.0.1:7000 10.0.0.1:7070 leader 3 42",
		"c2":  "c2 10.0.0.2:7000 10.0.0.2:7070 follower 3 41",
		"c3":  "c3 10.0.0.3:7000 10.0.0.3:7070 unreachable - -",
		"ps1": "ps1 h1 - - busy j1 0s ago",
		"w1":  "w1 h2 8 NVIDIA H200 (cuda:0) idle - 0s ago",
	} {
		if rows[id] != want {
			t.Errorf("row %q, want %q", rows[id], want)
		}
	}
	out, _, err = maas(context.Background(), "cluster", "status", "-o", "json", "--server", f.URL)
	var cs api.ClusterStatus
	if err != nil || json.Unmarshal([]byte(out), &cs) != nil || cs.Leader != "c1" || len(cs.Workers) != 1 {
		t.Errorf("json: %v, %q", err, out)
	}
}

func TestUnreachableServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, _, err = maas(context.Background(), "job", "ls", "--server", addr)
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "maas local") {
		t.Errorf("err = %v, want the address and what to do", err)
	}
}

// TestClusterStatusElection: a cluster without a leader says so, and a
// candidate shows as electing.
func TestClusterStatusElection(t *testing.T) {
	var b strings.Builder
	cs := api.ClusterStatus{Nodes: []api.Node{{ID: "c1", RaftAddr: "a:7000", HTTPAddr: "a:7070", State: "Candidate", Term: 7, AppliedIndex: 9}}}
	if err := printCluster(&b, cs, time.Now()); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); !strings.Contains(out, "candidate (electing)") || !strings.Contains(out, "no leader: an election is under way") {
		t.Errorf("a cluster electing a leader:\n%s", out)
	}
}
