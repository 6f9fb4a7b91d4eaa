package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maas-ml/maas/deploy/cluster"
	"github.com/maas-ml/maas/deploy/cluster/clustertest"
	"github.com/maas-ml/maas/internal/natsserver"
)

// runData runs `maas data ARGS`.
func runData(args ...string) (stdout, stderr string, err error) {
	cmd := dataCmd()
	var out, errb strings.Builder
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = cmd.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

// tinyCIFARDir writes a CIFAR-10 set of n records per batch file.
func tinyCIFARDir(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"} {
		var b []byte
		for r := range n {
			b = append(append(b, byte(r%10)), make([]byte, 3072)...)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func startNATSServer(t *testing.T, c natsserver.Config) string {
	t.Helper()
	c.Port = -1
	s, err := natsserver.Start(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL()
}

// TestDataCommands: push, ls (table and JSON) and rm against an embedded
// NATS server, and the errors that name what was wrong.
func TestDataCommands(t *testing.T) {
	c := natsserver.DefaultConfig()
	c.StoreDir = t.TempDir()
	url := startNATSServer(t, c)
	dir := tinyCIFARDir(t, 3)

	out, _, err := runData("push", "tiny", dir, "--kind", "cifar10", "--shard-samples", "4", "--limit", "10", "--nats", url)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "pushed tiny: cifar10, 10 training and 3 test samples in 4 shards") || !strings.Contains(out, "dataset: {name: tiny}") {
		t.Errorf("push said:\n%s", out)
	}
	out, _, err = runData("ls", "--nats", url)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") ||
		strings.Join(strings.Fields(lines[1])[:5], " ") != "tiny cifar10 10 3 4" {
		t.Errorf("ls:\n%s", out)
	}
	out, _, err = runData("ls", "-o", "json", "--nats", url)
	var sums []dataSummary
	if err != nil || json.Unmarshal([]byte(out), &sums) != nil || len(sums) != 1 || sums[0].Train != 10 || sums[0].Bytes == 0 {
		t.Errorf("ls -o json: %v\n%s", err, out)
	}
	if out, _, err = runData("rm", "tiny", "--nats", url); err != nil || !strings.Contains(out, "removed dataset tiny") {
		t.Errorf("rm: %v\n%s", err, out)
	}
	_, stderr, err := runData("ls", "--nats", url)
	if err != nil || !strings.Contains(stderr, "no datasets yet") {
		t.Errorf("ls of none: %v, %q", err, stderr)
	}

	noJS := startNATSServer(t, natsserver.DefaultConfig())
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"rm", "tiny", "--nats", url}, "not in bucket maas-data"},
		{[]string{"push", "x", dir, "--kind", "imagenet", "--nats", url}, "unknown dataset kind"},
		{[]string{"push", "x", filepath.Join(dir, "missing"), "--kind", "cifar10", "--nats", url}, "missing"},
		{[]string{"push", "x", dir, "--nats", url}, `"kind" not set`},
		{[]string{"push", "a/b", dir, "--kind", "cifar10", "--nats", url}, "invalid dataset name"},
		{[]string{"push", "x", dir, "--kind", "cifar10", "--nats", "nats://127.0.0.1:1"}, "connect to NATS at nats://127.0.0.1:1"},
		{[]string{"push", "x", dir, "--kind", "cifar10", "--nats", noJS}, "JetStream is not enabled"},
	} {
		if _, _, err := runData(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("data %v: %v, want an error saying %s", tc.args, err, tc.want)
		}
	}
}

// TestDataPushSecured: on a secured NATS server the operator's
// credential of `maas cluster init` pushes; a worker's is refused, told
// to use operator.nk; none is refused at the door.
func TestDataPushSecured(t *testing.T) {
	s := clustertest.New(t)
	c := natsserver.DefaultConfig()
	c.StoreDir, c.TLSCert, c.TLSKey, c.AuthFile = t.TempDir(), s.HostCert(), s.HostKey(), s.NATSUsers()
	url := startNATSServer(t, c)
	dir := tinyCIFARDir(t, 1)
	push := func(seed string) error {
		args := []string{"push", "tiny", dir, "--kind", "cifar10", "--nats", url, "--nats-ca", s.CA()}
		if seed != "" {
			args = append(args, "--nats-seed", seed)
		}
		_, _, err := runData(args...)
		return err
	}
	if err := push(s.Path(cluster.OperatorSeedFile)); err != nil {
		t.Fatalf("the operator pushes: %v", err)
	}
	if err := push(s.Seed(t, cluster.KindWorker)); err == nil || !strings.Contains(err.Error(), cluster.OperatorSeedFile) {
		t.Errorf("a worker's credential: %v; want a refusal naming %s", err, cluster.OperatorSeedFile)
	}
	if err := push(""); err == nil || !strings.Contains(err.Error(), "--nats-seed") {
		t.Errorf("no credential: %v; want a refusal naming --nats-seed", err)
	}
}
