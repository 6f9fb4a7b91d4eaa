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
