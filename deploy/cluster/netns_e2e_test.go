package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/auth"
	"github.com/maas-ml/maas/internal/dataset"
)

// e2e drives a launched, secured cluster as its users do: the operator
// pushes data with the maas binary, a user submits a job and asks the
// serving endpoint, each with the credentials of `maas cluster init`.
type e2e struct {
	t       *testing.T
	f       *File
	bin     string
	secrets string
	api     *api.Client // HTTPS, the submit token
	https   *http.Client
}

// e2eData is the dataset name the test pushes, and how many samples of
// each MNIST split.
const (
	e2eData    = "mnist-e2e"
	e2eSamples = 3000
)

func newE2E(t *testing.T, f *File, bin, secrets string) *e2e {
	t.Helper()
	tc, err := ClientTLS(filepath.Join(secrets, CACertFile), "", "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := api.NewClient("https://"+f.RaftPeers()[0].HTTPAddr, api.WithTLSConfig(tc), api.WithToken(e2eToken(t, secrets, auth.RoleSubmit)))
	if err != nil {
		t.Fatal(err)
	}
	return &e2e{t: t, f: f, bin: bin, secrets: secrets, api: c, https: &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 30 * time.Second}}
}

func e2eToken(t *testing.T, secrets string, r auth.Role) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(secrets, TokenFile(r)))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// maas runs the maas binary with args and returns its output.
func (e *e2e) maas(args ...string) string {
	e.t.Helper()
	cmd := exec.Command(e.bin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("maas %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// pushData pushes a part of MNIST as the operator, over TLS to the
// cluster's NATS servers.
func (e *e2e) pushData(mnist string) {
	e.t.Helper()
	start := time.Now()
	e.maas("data", "push", e2eData, mnist, "--kind", "mnist", "--limit", fmt.Sprint(e2eSamples),
		"--nats", strings.Join(e.f.NATSServers(), ","),
		"--nats-seed", filepath.Join(e.secrets, OperatorSeedFile), "--nats-ca", filepath.Join(e.secrets, CACertFile))
	out := e.maas("data", "ls", "--nats", strings.Join(e.f.NATSServers(), ","),
		"--nats-seed", filepath.Join(e.secrets, OperatorSeedFile), "--nats-ca", filepath.Join(e.secrets, CACertFile))
	if !strings.Contains(out, e2eData) {
		e.t.Fatalf("maas data ls does not list %s:\n%s", e2eData, out)
	}
	e.t.Logf("pushed %s in %v", e2eData, time.Since(start).Round(time.Millisecond))
}

// e2eSpec is the job: the tiny CNN on the pushed dataset, for long
// enough that the upgrade happens while it trains.
const e2eSpec = `name: ns-cnn
model:
  input: [1, 28, 28]
  layers:
    - {type: conv2d, filters: 4, kernel: 3, padding: 1}
    - {type: relu}
    - {type: maxpool2d, kernel: 4}
    - {type: flatten}
    - {type: dense, units: 10}
loss: softmax_cross_entropy
optimizer: {type: adam, lr: 0.01}
dataset:
  name: ` + e2eData + `
  kind: mnist
  normalize: {mean: [0.1307], std: [0.3081]}
batch_size: 150
epochs: 40
seed: 2
checkpoint_every: 20
`

// submit submits the job on 3 workers and 2 parameter servers.
func (e *e2e) submit() string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := e.api.Submit(ctx, api.SubmitRequest{Spec: e2eSpec, Workers: 3, ParameterServers: 2})
	if err != nil {
		e.t.Fatalf("submit: %v", err)
	}
	return r.ID
}

// job is the job's status, retrying through leader changes (the upgrade
// restarts every coordinator).
func (e *e2e) job(id string, d time.Duration, done func(api.JobStatus) bool) api.JobStatus {
	e.t.Helper()
	deadline := time.Now().Add(d)
	var last error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		js, err := e.api.Job(ctx, id)
		cancel()
		if err == nil && (done(js) || api.Terminal(js.State)) {
			return js
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			e.logJob(id)
			e.t.Fatalf("job %s: waited %v; last status %s step %d, last error %v", id, d, js.State, js.Step, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (e *e2e) waitStep(id string, step int64, d time.Duration) {
	e.t.Helper()
	js := e.job(id, d, func(js api.JobStatus) bool { return js.Step >= step })
	if js.State != api.JobRunning {
		e.logJob(id)
		e.t.Fatalf("job %s is %s before step %d: %s", id, js.State, step, js.Reason)
	}
}

// waitJob waits for the job to end, and wants it succeeded with a model.
func (e *e2e) waitJob(id string, d time.Duration) api.JobStatus {
	e.t.Helper()
	js := e.job(id, d, func(api.JobStatus) bool { return false })
	if js.State != api.JobSucceeded || js.Model == nil {
		e.logJob(id)
		dumpLogs(e.t, e.f)
		e.t.Fatalf("job %s ended %s: %s", id, js.State, js.Reason)
	}
	return js
}

// logJob writes the job's log to the test log.
func (e *e2e) logJob(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	page, err := e.api.Logs(ctx, id, 0)
	if err != nil {
		e.t.Logf("job log: %v", err)
		return
	}
	for _, l := range page.Entries {
		e.t.Logf("job log %s: %s", l.Time.Format("15:04:05.000"), l.Message)
	}
}

// infer asks the serving endpoint over HTTPS, with the read token, for
// the classes of 200 MNIST test images as raw pixels, once it serves the
// model, and wants most of them right.
func (e *e2e) infer(mnist, model string) {
	e.t.Helper()
	var serve Process
	for _, p := range e.f.ProcessesOf(KindServe) {
		serve = p
	}
	base := "https://" + serve.Addr(PortHTTP) + "/v2/models/" + model
	read := e2eToken(e.t, e.secrets, auth.RoleRead)
	do := func(method, url, token string, body []byte) (int, []byte) {
		req, err := http.NewRequest(method, url, bytes.NewReader(body))
		if err != nil {
			e.t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := e.https.Do(req)
		if err != nil {
			return 0, []byte(err.Error())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, b := do("GET", base+"/ready", read, nil)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			dumpLogs(e.t, e.f)
			e.t.Fatalf("serve never had model %s ready: %d %s", model, code, b)
		}
		time.Sleep(250 * time.Millisecond)
	}
	test, err := dataset.Open("mnist", mnist, dataset.Test)
	if err != nil {
		e.t.Fatal(err)
	}
	// Requests of 64 images (serve's default max batch), 192 in all.
	const per, n = 64, 192
	right := 0
	for lo := 0; lo < n; lo += per {
		pixels := make([]float32, per*784)
		for i, p := range test.Pixels[lo*784 : (lo+per)*784] {
			pixels[i] = float32(p)
		}
		body, _ := json.Marshal(map[string]any{
			"inputs": []map[string]any{{"name": "input", "datatype": "FP32", "shape": []int{per, 1, 28, 28},
				"parameters": map[string]any{"raw_pixels": true}, "data": pixels}},
			"outputs": []map[string]any{{"name": "class"}},
		})
		if lo == 0 {
			if code, b := do("POST", base+"/infer", "", body); code != http.StatusUnauthorized {
				e.t.Errorf("inference without a token: %d %s, want 401", code, b)
			}
		}
		code, b := do("POST", base+"/infer", read, body)
		if code != http.StatusOK {
			e.t.Fatalf("inference: %d %s", code, b)
		}
		var resp struct {
			Outputs []struct {
				Name string    `json:"name"`
				Data []float64 `json:"data"`
			} `json:"outputs"`
		}
		if err := json.Unmarshal(b, &resp); err != nil || len(resp.Outputs) != 1 || len(resp.Outputs[0].Data) != per {
			e.t.Fatalf("inference answer %s: %v", b, err)
		}
		for i, c := range resp.Outputs[0].Data {
			if int(c) == int(test.Labels[lo+i]) {
				right++
			}
		}
	}
	e.t.Logf("served %s over HTTPS: %d of %d test images right", model, right, n)
	if right < n*8/10 {
		e.t.Errorf("the served model got %d of %d test images right, want 80%%+", right, n)
	}
}

// probeSecured checks that the launched cluster's endpoints refuse
// clients without its credentials: the coordinator API to plain HTTP,
// without a token and with a read token for a write; NATS to a client
// without an nkey and to one without TLS.
func probeSecured(t *testing.T, f *File, secrets string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr := f.RaftPeers()[0].HTTPAddr
	tc, err := ClientTLS(filepath.Join(secrets, CACertFile), "", "")
	if err != nil {
		t.Fatal(err)
	}
	client := func(url string, o ...api.Option) *api.Client {
		c, err := api.NewClient(url, o...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if _, err := client("http://" + addr).Jobs(ctx); !errors.Is(err, api.ErrTLS) {
		t.Errorf("plain HTTP to the coordinator API: %v, want ErrTLS", err)
	}
	if _, err := client("https://"+addr, api.WithTLSConfig(tc)).Jobs(ctx); !errors.Is(err, api.ErrUnauthorized) {
		t.Errorf("the coordinator API without a token: %v, want 401", err)
	}
	readOnly := client("https://"+addr, api.WithTLSConfig(tc), api.WithToken(e2eToken(t, secrets, auth.RoleRead)))
	if _, err := readOnly.Submit(ctx, api.SubmitRequest{Spec: e2eSpec, Workers: 1, ParameterServers: 1}); !errors.Is(err, api.ErrForbidden) {
		t.Errorf("a submit with the read token: %v, want 403", err)
	}
	// The file names no data_roots: no job may read a path on the hosts.
	submit := client("https://"+addr, api.WithTLSConfig(tc), api.WithToken(e2eToken(t, secrets, auth.RoleSubmit)))
	local := strings.Replace(e2eSpec, "  name: "+e2eData+"\n", "  path: /etc\n", 1)
	if _, err := submit.Submit(ctx, api.SubmitRequest{Spec: local, Workers: 1, ParameterServers: 1}); !errors.Is(err, api.ErrBadRequest) ||
		!strings.Contains(err.Error(), "maas data push") {
		t.Errorf("a job reading /etc on the hosts: %v, want 400 pointing to maas data push", err)
	}
	if jobs, err := readOnly.Jobs(ctx); err != nil || len(jobs) != 0 {
		t.Errorf("jobs after the refused submits: %v, %v; want none", jobs, err)
	}
	url := strings.Join(f.NATSServers(), ",")
	if nc, err := nats.Connect(url, nats.Secure(tc), nats.MaxReconnects(0), nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Error("NATS let in a client without an nkey")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("NATS without an nkey: %v, want an authorization violation", err)
	}
	seed, err := nats.NkeyOptionFromSeed(filepath.Join(secrets, OperatorSeedFile))
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(url, seed, nats.MaxReconnects(0), nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Error("NATS let in a client without TLS")
	}
	if nc, err := nats.Connect(url, seed, nats.Secure(tc), nats.MaxReconnects(0), nats.Timeout(5*time.Second)); err != nil {
		t.Errorf("NATS refused the operator over TLS: %v", err)
	} else {
		nc.Close()
	}
}
