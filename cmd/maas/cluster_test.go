package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maas-ml/maas/internal/dataset"
)

// proc is a role running as its own OS process.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startProc(t *testing.T, bin, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), out: &lockedBuffer{}}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		if t.Failed() {
			t.Logf("--- %s output:\n%s", name, p.out.String())
		}
	})
	return p
}

// TestClusterProcesses runs every role as a separate process of the built
// binary on loopback — NATS, 3 coordinators, 2 parameter servers, 3
// workers — and trains a small MNIST job to completion through the CLI.
func TestClusterProcesses(t *testing.T) {
	if _, err := dataset.DefaultMNISTDir(); err != nil {
		t.Skip("real MNIST not in the module cache:", err)
	}
	bin := buildMaas(t)
	dir := t.TempDir()
	p := freePorts(t, 7)
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", p[0])
	startProc(t, bin, "nats", "nats", "--port", fmt.Sprint(p[0]), "--store-dir", filepath.Join(dir, "nats"))
	apis := []string{}
	coordinators := map[string]*proc{}
	for i := range 3 {
		id := fmt.Sprintf("c%d", i+1)
		api := fmt.Sprintf("127.0.0.1:%d", p[1+2*i])
		apis = append(apis, api)
		args := []string{"coordinator", "--id", id, "--nats", natsURL, "--raft", fmt.Sprintf("127.0.0.1:%d", p[2+2*i]),
			"--api", api, "--data-dir", filepath.Join(dir, id)}
		if i > 0 {
			args = append(args, "--join", apis[0])
		}
		coordinators[id] = startProc(t, bin, id, args...)
	}
	procs := map[string]*proc{}
	for i := range 2 {
		procs[fmt.Sprintf("ps-%d", i+1)] = startProc(t, bin, fmt.Sprintf("ps%d", i+1), "paramserver", "--nats", natsURL, "--id", fmt.Sprintf("ps-%d", i+1))
	}
	for i := range 3 {
		procs[fmt.Sprintf("w-%d", i+1)] = startProc(t, bin, fmt.Sprintf("w%d", i+1), "worker", "--nats", natsURL, "--id", fmt.Sprintf("w-%d", i+1), "--threads", "1")
	}
	server := "http://" + apis[2] // a follower: the CLI follows its redirect
	cli := func(args ...string) ([]byte, error) {
		c := exec.Command(bin, args...)
		c.Env = append(os.Environ(), "MAAS_SERVER="+server)
		return c.CombinedOutput()
	}
	// Wait until all three coordinators are in and every member registered.
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := cli("cluster", "status", "-o", "json")
		var cs struct {
			Nodes            []any            `json:"nodes"`
			Workers          []map[string]any `json:"workers"`
			ParameterServers []map[string]any `json:"parameter_servers"`
		}
		if err == nil && json.Unmarshal(out, &cs) == nil && len(cs.Nodes) == 3 && len(cs.Workers) == 3 && len(cs.ParameterServers) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster did not form: %v\n%s", err, out)
		}
		time.Sleep(300 * time.Millisecond)
	}
	spec := filepath.Join(dir, "tiny.yaml")
	if err := os.WriteFile(spec, []byte(e2eSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := cli("job", "submit", "-f", spec, "--workers", "3", "--parameter-servers", "2", "--follow")
	if err != nil {
		t.Fatalf("job submit --follow: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "succeeded") {
		t.Fatalf("job output:\n%s", out)
	}
	out, err = cli("model", "ls")
	if err != nil || !strings.Contains(string(out), "tiny-cnn") {
		t.Fatalf("model ls: %v\n%s", err, out)
	}
	pulled := filepath.Join(dir, "pulled")
	if out, err := cli("model", "pull", "tiny-cnn", "-o", pulled); err != nil {
		t.Fatalf("model pull: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "eval", pulled, "--data", "mnist-test").CombinedOutput(); err != nil || !strings.Contains(string(out), "accuracy") {
		t.Fatalf("eval of the pulled model: %v\n%s", err, out)
	}
	// A recurrent model takes the same path: row-by-row MNIST with an LSTM
	// on 2 workers.
	lstm := filepath.Join(dir, "lstm.yaml")
	lstmSpec := strings.NewReplacer("name: tiny-cnn", "name: tiny-lstm", "input: [1, 28, 28]", "input: [28, 28]",
		"    - {type: conv2d, filters: 4, kernel: 3, padding: 1}\n    - {type: relu}\n    - {type: maxpool2d, kernel: 4}\n    - {type: flatten}\n",
		"    - {type: lstm, units: 16}\n").Replace(e2eSpec)
	if err := os.WriteFile(lstm, []byte(lstmSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := cli("job", "submit", "-f", lstm, "--workers", "2", "--follow"); err != nil || !strings.Contains(string(out), "succeeded") {
		t.Fatalf("LSTM job: %v\n%s\nspec:\n%s", err, out, lstmSpec)
	}

	// Faults, one of each, with SIGKILL on real processes: a worker (the
	// job goes on with the other two), a parameter server (the standby
	// ps-3 takes its range from the last checkpoint) and the coordinator
	// leader (another is elected); the job still succeeds.
	procs["ps-3"] = startProc(t, bin, "ps3", "paramserver", "--nats", natsURL, "--id", "ps-3")
	chaos := filepath.Join(dir, "chaos.yaml")
	os.WriteFile(chaos, []byte(strings.Replace(e2eSpec, "epochs: 1", "epochs: 2", 1)+"checkpoint_every: 20\n"), 0o644)
	out, err = cli("job", "submit", "-f", chaos, "--workers", "3", "--parameter-servers", "2")
	if err != nil {
		t.Fatalf("chaos job: %v\n%s", err, out)
	}
	id := strings.TrimSpace(string(out))
	status := func() procJob { return readJob(cli, id) }
	waitFor := func(what string, cond func() bool) {
		deadline := time.Now().Add(90 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				js := status()
				t.Fatalf("chaos job: waiting for %s: %+v", what, js)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitFor("step 10", func() bool { return status().Step >= 10 })
	procs["w-3"].cmd.Process.Kill()
	killed := time.Now()
	waitFor("a membership without w-3", func() bool { js := status(); return len(js.Members) == 2 && js.Epoch >= 2 })
	t.Logf("worker SIGKILLed: new membership after %v", time.Since(killed).Round(time.Millisecond))
	waitFor("a committed checkpoint", func() bool { return status().CommittedStep >= 40 })
	procs["ps-1"].cmd.Process.Kill()
	killed = time.Now()
	waitFor("ps-3 in the place of ps-1", func() bool { js := status(); return slices.Contains(js.Servers, "ps-3") })
	t.Logf("parameter server SIGKILLed: standby in after %v", time.Since(killed).Round(time.Millisecond))
	var cs struct {
		Leader string `json:"leader"`
	}
	if out, err := cli("cluster", "status", "-o", "json"); err != nil || json.Unmarshal(out, &cs) != nil || coordinators[cs.Leader] == nil {
		t.Fatalf("cluster status: %v\n%s", err, out)
	}
	coordinators[cs.Leader].cmd.Process.Kill()
	if cs.Leader == "c3" { // the CLI's server: go through another
		server = "http://" + apis[0]
	}
	killed = time.Now()
	waitFor("the job to end", func() bool { js := status(); return js.State == "succeeded" || js.State == "failed" })
	if js := status(); js.State != "succeeded" {
		t.Fatalf("chaos job %s: %s", js.State, js.Reason)
	}
	t.Logf("leader %s SIGKILLed: the job succeeded %v later", cs.Leader, time.Since(killed).Round(time.Millisecond))

	// Bad input: a malformed spec is a 400 naming the field and a non-zero exit.
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(strings.Replace(e2eSpec, "batch_size: 600", "batch_size: -3", 1)), 0o644)
	if out, err := cli("job", "submit", "-f", bad); err == nil || !strings.Contains(string(out), "batch_size") {
		t.Fatalf("bad spec: %v\n%s", err, out)
	}
	if out, err := cli("job", "status", "no-such-job"); err == nil || !strings.Contains(string(out), "not found") {
		t.Fatalf("unknown job: %v\n%s", err, out)
	}
}

// procJob is what the process tests read of `maas job status -o json`.
type procJob struct {
	State         string   `json:"state"`
	Reason        string   `json:"reason"`
	Step          int64    `json:"step"`
	CommittedStep int64    `json:"committed_step"`
	Epoch         uint64   `json:"epoch"`
	Members       []string `json:"members"`
	Servers       []string `json:"servers"`
}

// readJob reads a job's status through the CLI (zero when it cannot).
func readJob(cli func(args ...string) ([]byte, error), id string) procJob {
	var js procJob
	if out, err := cli("job", "status", id, "-o", "json"); err == nil {
		json.Unmarshal(out, &js)
	}
	return js
}
