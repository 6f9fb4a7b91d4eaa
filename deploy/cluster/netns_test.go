package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/netemu"
)

// TestNetnsCluster launches a real, secured cluster of three hosts with
// Up and runs it end to end: 3 NATS servers, 3 coordinators, 2 parameter
// servers, 3 workers and serve; the secured endpoints refuse clients
// without credentials; a dataset pushed with `maas data push` trains a
// job across the hosts, and Upgrade restarts every process host by host
// while it trains, without failing it; the model is served over HTTPS;
// Down leaves nothing running. Each host is a network namespace on a
// bridge, running its own OpenSSH sshd; the launcher logs in to them as
// root with a generated key and checks their generated host keys.
//
// It needs root, `ip netns` and OpenSSH's sshd (apt-get install -y
// openssh-server); without them it skips.
func TestNetnsCluster(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: the netns cluster test needs root (network namespaces and sshd)")
	}
	if _, err := os.Stat(netemu.SSHD); err != nil {
		t.Skipf("skipping: no OpenSSH server at %s (apt-get install -y openssh-server)", netemu.SSHD)
	}
	for _, tool := range []string{"ip", "ssh-keygen", "setsid", "nohup", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: the netns cluster test needs %s: %v", tool, err)
		}
	}
	mnist, err := dataset.DefaultMNISTDir()
	if err != nil {
		t.Skipf("skipping: no MNIST to train on: %v", err)
	}
	start := time.Now()
	nt, err := netemu.New(3)
	if errors.Is(err, netemu.ErrUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nt.Close() })
	hosts := nt.Hosts
	dir := t.TempDir()
	bin := buildMaas(t, dir)
	clientKey := filepath.Join(dir, "id_ed25519")
	if err := netemu.SSHKeygen(clientKey); err != nil {
		t.Fatal(err)
	}
	clientPub, err := os.ReadFile(clientKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	var known bytes.Buffer
	for i, h := range hosts {
		hostPub, stop, err := nt.StartSSHD(i, t.TempDir(), clientPub)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		fmt.Fprintf(&known, "%s %s", h.Addr, hostPub)
	}
	knownHosts := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(knownHosts, known.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`name: nstest
ssh: {user: root, key: %s, known_hosts: %s}
hosts:
  - {name: h1, address: %s, data_dir: %s, roles: [nats, coordinator, paramserver, worker, serve], worker: {metrics_port: 9300}}
  - {name: h2, address: %s, data_dir: %s, roles: [nats, coordinator, paramserver, worker]}
  - {name: h3, address: %s, data_dir: %s, roles: [nats, coordinator, worker]}
`, clientKey, knownHosts,
		hosts[0].Addr, filepath.Join(dir, "h1"), hosts[1].Addr, filepath.Join(dir, "h2"), hosts[2].Addr, filepath.Join(dir, "h3"))
	f, err := Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killLeftovers(t, f) })
	t.Logf("%d namespaces with sshd ready in %v", len(hosts), time.Since(start).Round(time.Millisecond))

	secrets := filepath.Join(dir, "secrets")
	if _, err := Init(f, secrets, InitOptions{}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	opts := LaunchOptions{Binary: bin, SecretsDir: secrets, Supervisor: SupervisorNohup, Progress: testLog{t}, ReadyTimeout: 60 * time.Second}
	if err := Up(ctx, f, opts); err != nil {
		dumpLogs(t, f)
		t.Fatalf("Up: %v", err)
	}
	t.Logf("up in %v", time.Since(start).Round(time.Millisecond))

	// Each host holds its own secrets only, private.
	for _, h := range f.Hosts {
		d := Layout{DataDir: h.DataDir}.Secrets()
		entries, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
			if st, err := os.Stat(filepath.Join(d, e.Name())); err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("%s/%s: %v, want mode 0600", d, e.Name(), err)
			}
		}
		if got, want := strings.Join(names, " "), strings.Join(sortedCopy(f.hostSecrets(&h)), " "); got != want {
			t.Errorf("host %s has secrets %s, want %s", h.Name, got, want)
		}
	}

	states, err := Status(ctx, f, opts)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	pids := map[string]int{}
	for _, s := range states {
		if !s.Running() {
			t.Errorf("process %s on %s is not running", s.ID, s.Host)
		}
		pids[s.ID] = s.PID
	}
	if len(states) != 12 {
		t.Errorf("Status lists %d processes, want 12", len(states))
	}
	cs, err := ClusterStatus(ctx, f, opts)
	if err != nil {
		t.Fatalf("ClusterStatus: %v", err)
	}
	if len(cs.Nodes) != 3 || cs.Leader == "" || len(cs.Servers) != 2 || len(cs.Workers) != 3 {
		t.Errorf("coordinator API lists %d nodes (leader %q), %d servers, %d workers; want 3 with a leader, 2, 3",
			len(cs.Nodes), cs.Leader, len(cs.Servers), len(cs.Workers))
	}
	probeSecured(t, f, secrets)
	// h1's worker serves its metrics where the file says.
	if resp, err := http.Get("http://" + hosts[0].Addr + ":9300/metrics"); err != nil {
		t.Errorf("h1's worker metrics: %v", err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(b, []byte("go_goroutines")) {
			t.Errorf("h1's worker metrics: %d %.200s", resp.StatusCode, b)
		}
	}

	// Up again changes nothing: every process keeps running as it was.
	if err := Up(ctx, f, opts); err != nil {
		t.Fatalf("second Up: %v", err)
	}
	again, err := Status(ctx, f, opts)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	for _, s := range again {
		if s.PID != pids[s.ID] {
			t.Errorf("second Up restarted %s: pid %d, was %d", s.ID, s.PID, pids[s.ID])
		}
	}

	// A dataset pushed from this machine trains a job on the hosts; the
	// whole cluster is upgraded, host by host, while it runs.
	e := newE2E(t, f, bin, secrets)
	e.pushData(mnist)
	id := e.submit()
	e.waitStep(id, 5, 2*time.Minute)
	t.Logf("job %s training across the hosts (%v)", id, time.Since(start).Round(time.Millisecond))
	if err := Upgrade(ctx, f, opts); err != nil {
		dumpLogs(t, f)
		t.Fatalf("Upgrade: %v", err)
	}
	upgraded, err := Status(ctx, f, opts)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	for _, s := range upgraded {
		if !s.Running() || s.PID == pids[s.ID] {
			t.Errorf("after Upgrade %s runs as pid %d (was %d)", s.ID, s.PID, pids[s.ID])
		}
		pids[s.ID+" before upgrade"] = pids[s.ID]
		pids[s.ID] = s.PID
	}
	if cs, err := ClusterStatus(ctx, f, opts); err != nil || len(cs.Nodes) != 3 || cs.Leader == "" {
		t.Errorf("after Upgrade: %d coordinators, leader %q, %v", len(cs.Nodes), cs.Leader, err)
	}
	t.Logf("upgraded in %v", time.Since(start).Round(time.Millisecond))
	js := e.waitJob(id, 4*time.Minute)
	t.Logf("job %s %s in membership epoch %d: test accuracy %.4f (%v)", id, js.State, js.Epoch, js.Model.Metrics["test_accuracy"], time.Since(start).Round(time.Millisecond))
	e.infer(mnist, js.Model.Name)

	if err := Down(ctx, f, opts, true); err != nil {
		dumpLogs(t, f)
		t.Fatalf("Down: %v", err)
	}
	for id, pid := range pids {
		if processAlive(pid) {
			t.Errorf("process %s (pid %d) still runs after Down", id, pid)
		}
	}
	for _, h := range f.Hosts {
		if _, err := os.Stat(Layout{DataDir: h.DataDir}.Bin()); !os.IsNotExist(err) {
			t.Errorf("Down --purge left %s: %v", Layout{DataDir: h.DataDir}.Bin(), err)
		}
	}
	t.Logf("up, status, up again, push, train, upgrade, serve and down in %v", time.Since(start).Round(time.Millisecond))
}

// sortedCopy is ss sorted, as os.ReadDir lists names.
func sortedCopy(ss []string) []string {
	c := slices.Clone(ss)
	slices.Sort(c)
	return c
}

// testLog writes the launcher's progress to the test log.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// buildMaas builds the maas binary (static) into dir.
func buildMaas(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "maas")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/maas")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build maas: %v: %s", err, out)
	}
	return bin
}

// killLeftovers kills the processes the test's cluster may have left
// running (when the test failed before Down): those whose pid file names a
// live process marked with the process's id.
func killLeftovers(t *testing.T, f *File) {
	for _, p := range f.Processes() {
		l := Layout{DataDir: f.host(p.Host).DataDir}
		b, err := os.ReadFile(l.PID(p.ID))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || !processAlive(pid) {
			continue
		}
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if bytes.Contains(env, []byte(ProcessEnv+"="+p.ID+"\x00")) {
			t.Logf("killing leftover %s (pid %d)", p.ID, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// processAlive reports whether pid is a live process (not a zombie).
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// dumpLogs logs the end of every process's log, to tell why it failed.
func dumpLogs(t *testing.T, f *File) {
	for _, p := range f.Processes() {
		b, err := os.ReadFile(Layout{DataDir: f.host(p.Host).DataDir}.Log(p.ID))
		if err != nil {
			continue
		}
		if len(b) > 2000 {
			b = b[len(b)-2000:]
		}
		t.Logf("log of %s:\n%s", p.ID, b)
	}
}
