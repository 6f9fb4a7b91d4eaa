//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maas-ml/maas/internal/dataset"
)

// TestChaos is `make chaos`: a cluster of real processes (NATS, 3
// coordinators, 3 parameter servers, 4 workers) runs a long job while the
// coordinator leader is SIGKILLed every 10 s, a worker of the job every
// 23 s, a worker frozen with SIGSTOP every 29 s (thawed once it left the
// job), a parameter server of the job every 47 s and the NATS server every
// 37 ticks (down 9 s: past the job's 5 s barrier timeout, so the job is
// paused; every other time 3 s), each restarted a few seconds later.
// Invariants, checked all along: the job never fails, its committed step
// never goes back, and it trains on after the faults stop.
// The figures (failover, re-split and restore times) go to
// bench/results/chaos-*.json. MAAS_CHAOS=1 enables it; MAAS_CHAOS_DURATION
// (default 3m) sets how long faults are injected.
func TestChaos(t *testing.T) {
	if os.Getenv("MAAS_CHAOS") == "" {
		t.Skip("run by `make chaos` (MAAS_CHAOS=1)")
	}
	if _, err := dataset.DefaultMNISTDir(); err != nil {
		t.Skip("real MNIST not in the module cache:", err)
	}
	duration := 3 * time.Minute
	if d, err := time.ParseDuration(os.Getenv("MAAS_CHAOS_DURATION")); err == nil {
		duration = d
	}
	bin := buildMaas(t)
	dir := t.TempDir()
	p := freePorts(t, 7)
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", p[0])
	procs := map[string]*proc{}
	args := map[string][]string{"nats": {"nats", "--port", fmt.Sprint(p[0]), "--store-dir", filepath.Join(dir, "nats")}}
	apis := map[string]string{}
	start := func(id string) { procs[id] = startProc(t, bin, id, args[id]...) }
	start("nats")
	for i := range 3 {
		id := fmt.Sprintf("c%d", i+1)
		apis[id] = fmt.Sprintf("127.0.0.1:%d", p[1+2*i])
		args[id] = []string{"coordinator", "--id", id, "--nats", natsURL, "--raft", fmt.Sprintf("127.0.0.1:%d", p[2+2*i]),
			"--api", apis[id], "--data-dir", filepath.Join(dir, id)}
		if i > 0 {
			args[id] = append(args[id], "--join", apis["c1"])
		}
		start(id)
	}
	for i := range 3 {
		id := fmt.Sprintf("ps-%d", i+1)
		args[id] = []string{"paramserver", "--nats", natsURL, "--id", id}
		start(id)
	}
	for i := range 4 {
		id := fmt.Sprintf("w-%d", i+1)
		args[id] = []string{"worker", "--nats", natsURL, "--id", id, "--threads", "1"}
		start(id)
	}
	// The CLI goes through any coordinator that is up.
	cli := func(args ...string) ([]byte, error) {
		var out []byte
		var err error
		for _, id := range []string{"c1", "c2", "c3"} {
			c := exec.Command(bin, args...)
			c.Env = append(os.Environ(), "MAAS_SERVER=http://"+apis[id])
			if out, err = c.CombinedOutput(); err == nil {
				return out, nil
			}
		}
		return out, err
	}
	leader := func() string {
		var cs struct {
			Leader string `json:"leader"`
		}
		if out, err := cli("cluster", "status", "-o", "json"); err == nil && json.Unmarshal(out, &cs) == nil {
			return cs.Leader
		}
		return ""
	}
	waitFor := func(what string, d time.Duration, cond func() bool) time.Duration {
		t0 := time.Now()
		for !cond() {
			if time.Since(t0) > d {
				t.Fatalf("chaos: %s: not within %v", what, d)
			}
			time.Sleep(50 * time.Millisecond)
		}
		return time.Since(t0)
	}
	waitFor("the cluster to form", 60*time.Second, func() bool {
		var cs struct {
			Nodes   []any `json:"nodes"`
			Workers []any `json:"workers"`
			Servers []any `json:"parameter_servers"`
		}
		out, err := cli("cluster", "status", "-o", "json")
		return err == nil && json.Unmarshal(out, &cs) == nil && len(cs.Nodes) == 3 && len(cs.Workers) == 4 && len(cs.Servers) == 3
	})
	spec := filepath.Join(dir, "chaos.yaml")
	os.WriteFile(spec, []byte(strings.Replace(e2eSpec, "epochs: 1", "epochs: 200", 1)+"checkpoint_every: 20\nbarrier_timeout: 5s\n"), 0o644)
	out, err := cli("job", "submit", "-f", spec, "--workers", "3", "--parameter-servers", "2")
	if err != nil {
		t.Fatalf("submit: %v\n%s", err, out)
	}
	id := strings.TrimSpace(string(out))
	committed := int64(0)
	status := func() procJob {
		js := readJob(cli, id)
		if js.State == "failed" {
			t.Fatalf("chaos: the job failed: %s", js.Reason)
		}
		if js.CommittedStep < committed {
			t.Fatalf("chaos: the committed step went back from %d to %d", committed, js.CommittedStep)
		}
		committed = max(committed, js.CommittedStep)
		return js
	}
	waitFor("step 20", 60*time.Second, func() bool { return status().Step >= 20 })

	var failover, resplit, restore, natsBack, frozen []time.Duration
	natsOutages := 0
	restartLater := func(id string, after time.Duration) {
		time.Sleep(after)
		start(id)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	begin := time.Now()
	for tick := 1; time.Since(begin) < duration; tick++ {
		time.Sleep(time.Second)
		status()
		switch {
		case tick%10 == 0:
			old := leader()
			if procs[old] == nil {
				continue
			}
			procs[old].cmd.Process.Kill()
			failover = append(failover, waitFor("a new leader", 30*time.Second, func() bool { l := leader(); return l != "" && l != old }))
			restartLater(old, 2*time.Second)
		case tick%23 == 0:
			js := status()
			if len(js.Members) < 2 {
				continue
			}
			w := js.Members[rng.IntN(len(js.Members))]
			procs[w].cmd.Process.Kill()
			resplit = append(resplit, waitFor("a membership without "+w, 30*time.Second, func() bool { return !slices.Contains(status().Members, w) }))
			restartLater(w, 3*time.Second)
		case tick%37 == 0:
			// NATS away for 9 s (over the job's 5 s barrier timeout: the
			// job must show paused), every other time 3 s: the job must
			// move on afterwards, in the same membership epoch.
			natsOutages++
			down := 9 * time.Second
			if natsOutages%2 == 0 {
				down = 3 * time.Second
			}
			before := status()
			procs["nats"].cmd.Process.Kill()
			procs["nats"].cmd.Wait()
			sawPaused := false
			for end := time.Now().Add(down); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
				sawPaused = sawPaused || status().State == "paused"
			}
			if sawPaused != (down > 5*time.Second) {
				t.Errorf("chaos: NATS away for %v: job seen paused %v; want paused only past the 5s barrier timeout", down, sawPaused)
			}
			start("nats")
			natsBack = append(natsBack, waitFor("steps after the NATS restart", 60*time.Second, func() bool { return status().Step > before.Step+5 }))
			if e := status().Epoch; e != before.Epoch {
				t.Errorf("chaos: the NATS restart changed the membership epoch from %d to %d", before.Epoch, e)
			}
		case tick%29 == 0:
			// A worker frozen (SIGSTOP): its heartbeats stop as if it died;
			// thawed (SIGCONT) after it left the job, it finds its epoch
			// gone and waits to be taken back.
			js := status()
			if len(js.Members) < 2 {
				continue
			}
			w := js.Members[rng.IntN(len(js.Members))]
			procs[w].cmd.Process.Signal(syscall.SIGSTOP)
			frozen = append(frozen, waitFor("a membership without frozen "+w, 30*time.Second, func() bool { return !slices.Contains(status().Members, w) }))
			procs[w].cmd.Process.Signal(syscall.SIGCONT)
		case tick%47 == 0:
			js := status()
			if len(js.Servers) == 0 {
				continue
			}
			s := js.Servers[rng.IntN(len(js.Servers))]
			procs[s].cmd.Process.Kill()
			restore = append(restore, waitFor("a standby in place of "+s, 60*time.Second, func() bool { return !slices.Contains(status().Servers, s) }))
			restartLater(s, 3*time.Second)
		}
	}
	// Faults stop: the job must train on.
	from := status().Step
	waitFor("50 more steps after the faults", 120*time.Second, func() bool { return status().Step >= from+50 })
	js := status()
	cli("job", "cancel", id)
	// Every coordinator's FSM, once they reach one applied index, is the
	// same state.
	type raftState struct {
		Index  uint64 `json:"index"`
		Digest string `json:"digest"`
	}
	var states map[string]raftState
	waitFor("the coordinators' FSMs at one index", 60*time.Second, func() bool {
		states = map[string]raftState{}
		for id, addr := range apis {
			resp, err := http.Get("http://" + addr + "/v1/raft/state")
			if err != nil {
				return false
			}
			var st raftState
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				return false
			}
			states[id] = st
		}
		return states["c1"].Index == states["c2"].Index && states["c2"].Index == states["c3"].Index
	})
	if states["c1"].Digest != states["c2"].Digest || states["c2"].Digest != states["c3"].Digest {
		t.Fatalf("chaos: the coordinators' FSMs differ at index %d: %+v", states["c1"].Index, states)
	}

	figures := map[string]any{
		"duration_s": duration.Seconds(), "final_step": js.Step, "committed_step": js.CommittedStep, "membership_epoch": js.Epoch,
		"leader_failover_ms": summary(failover), "worker_loss_to_new_membership_ms": summary(resplit),
		"server_loss_to_standby_ms": summary(restore), "nats_restart_to_progress_ms": summary(natsBack),
		"worker_stopped_to_new_membership_ms": summary(frozen),
		"fsm_index":                           states["c1"].Index, "fsms_identical": true,
	}
	b, _ := json.MarshalIndent(figures, "", "  ")
	t.Logf("chaos figures:\n%s", b)
	if path := os.Getenv("MAAS_CHAOS_OUT"); path != "" {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Error(err)
		}
	}
}

// summary gives the count, p50, p99 and max of ds in milliseconds.
func summary(ds []time.Duration) map[string]float64 {
	if len(ds) == 0 {
		return map[string]float64{"count": 0}
	}
	ms := make([]float64, len(ds))
	for i, d := range ds {
		ms[i] = float64(d.Microseconds()) / 1000
	}
	sort.Float64s(ms)
	pick := func(q float64) float64 { return ms[int(q*float64(len(ms)-1))] }
	return map[string]float64{"count": float64(len(ms)), "p50": pick(0.5), "p99": pick(0.99), "max": ms[len(ms)-1]}
}
