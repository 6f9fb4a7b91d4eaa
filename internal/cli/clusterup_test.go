package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maas-ml/maas/deploy/cluster"
)

// TestClusterStatusFile runs `maas cluster status -f` on a cluster whose
// host cannot be logged in to: every process is listed as unreachable
// and the command fails with the SSH error, naming the host. (The netns
// test in deploy/cluster runs up, status and down against real hosts.)
func TestClusterStatusFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "cluster.yaml")
	yaml := "name: t\nssh: {key: " + filepath.Join(dir, "missing-key") + "}\n" +
		"hosts:\n  - {name: solo, address: 127.0.0.1, coordinator: {http_port: 1}, roles: [nats, coordinator, paramserver, worker]}\n"
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, _, err := runRoot(context.Background(), "cluster", "status", "-f", file)
	if !errors.Is(err, cluster.ErrSSH) || !strings.Contains(err.Error(), "solo") {
		t.Fatalf("status of an unreachable host: %v; want an ssh error naming it", err)
	}
	for _, want := range []string{"solo-nats", "solo-coordinator", "solo-paramserver-1", "solo-worker-1", "unreachable", "COORDINATORS"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("status output lacks %q:\n%s", want, stdout)
		}
	}
	if _, _, err := runRoot(context.Background(), "cluster", "up", "-f", file, "--supervisor", "runit"); err == nil || !strings.Contains(err.Error(), "--supervisor") {
		t.Errorf("up --supervisor runit: %v; want a refusal", err)
	}
}

// runRoot runs args on the real root command.
func runRoot(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	root := Root()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err = root.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

// TestClusterUpSecuredByDefault: up without the secrets of `maas cluster
// init` refuses, saying what to do, before it logs in anywhere; --insecure
// and --secrets together are refused too.
func TestClusterUpSecuredByDefault(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "cluster.yaml")
	yaml := "name: t\nssh: {key: " + filepath.Join(dir, "missing-key") + "}\n" +
		"hosts:\n  - {name: solo, address: 127.0.0.1, roles: [nats, coordinator, paramserver, worker]}\n"
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for _, cmd := range []string{"up", "upgrade"} {
		_, _, err := runRoot(context.Background(), "cluster", cmd, "-f", file)
		if err == nil || !strings.Contains(err.Error(), "secured by default") || !strings.Contains(err.Error(), "maas cluster init") ||
			!strings.Contains(err.Error(), "--insecure") || errors.Is(err, cluster.ErrSSH) {
			t.Errorf("%s without secrets: %v; want a refusal naming cluster init and --insecure, before SSH", cmd, err)
		}
	}
	_, _, err := runRoot(context.Background(), "cluster", "up", "-f", file, "--insecure", "--secrets", dir)
	if err == nil || !strings.Contains(err.Error(), "choose one") {
		t.Errorf("--insecure with --secrets: %v", err)
	}
	// With the secrets it goes on, to the SSH login that fails here.
	if _, _, err := runRoot(context.Background(), "cluster", "init", "-f", file); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runRoot(context.Background(), "cluster", "up", "-f", file, "--timeout", "1s"); !errors.Is(err, cluster.ErrSSH) {
		t.Errorf("up with the default secrets directory: %v, want the SSH error", err)
	}
}

// TestSecuredArgsParse: every command line the launcher writes for a
// secured cluster is one the maas binary accepts (its flags exist).
func TestSecuredArgsParse(t *testing.T) {
	f, err := cluster.Parse([]byte(`name: lab
data_roots: [/srv/data]
ssh: {key: ~/.ssh/id_ed25519}
hosts:
  - {name: a, address: 10.0.0.1, roles: [nats, coordinator, paramserver, worker, serve]}
  - {name: b, address: 10.0.0.2, roles: [nats, coordinator, worker]}
  - {name: c, address: 10.0.0.3, roles: [nats, coordinator]}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Processes() {
		for _, secured := range []bool{false, true} {
			args := f.Args(p, secured)
			root := Root()
			cmd, rest, err := root.Find(args)
			if err != nil || cmd == root {
				t.Fatalf("%s: no command for %v: %v", p.ID, args, err)
			}
			if err := cmd.ParseFlags(rest); err != nil {
				t.Errorf("%s (secured %v): maas %s: %v", p.ID, secured, strings.Join(args, " "), err)
			}
		}
	}
}
