package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maas-ml/maas/deploy/cluster"
	"github.com/maas-ml/maas/internal/auth"
)

// TestClusterInit runs `maas cluster init` on the shipped example: the
// secrets land in --out with private modes, a second run refuses to
// replace them, --force does, and a bad cluster file is refused naming
// its field.
func TestClusterInit(t *testing.T) {
	out := filepath.Join(t.TempDir(), "secrets")
	example := "../../examples/cluster/cluster.yaml"
	stdout, _, err := maas(context.Background(), "cluster", "init", "-f", example, "--out", out)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{cluster.CACertFile, cluster.NATSUsersFile, cluster.TokensFile, cluster.HostCertFile("node1"), cluster.TokenFile(auth.RoleAdmin)} {
		st, err := os.Stat(filepath.Join(out, name))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v (mode %v), want a 0600 file", name, err, st)
		}
		if !strings.Contains(stdout, name) {
			t.Errorf("the summary does not mention %s:\n%s", name, stdout)
		}
	}
	before, _ := os.ReadFile(filepath.Join(out, cluster.CACertFile))
	if _, _, err := maas(context.Background(), "cluster", "init", "-f", example, "--out", out); !errors.Is(err, cluster.ErrSecretsExist) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("a second init: %v; want a refusal that mentions --force", err)
	}
	if after, _ := os.ReadFile(filepath.Join(out, cluster.CACertFile)); string(after) != string(before) {
		t.Fatal("a refused init changed the CA")
	}
	if _, _, err := maas(context.Background(), "cluster", "init", "-f", example, "--out", out, "--force"); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(out, cluster.CACertFile)); string(after) == string(before) {
		t.Fatal("--force kept the old CA")
	}
	bad := filepath.Join(t.TempDir(), "cluster.yaml")
	os.WriteFile(bad, []byte("name: x\nhosts:\n  - name: a\n    address: 10.0.0.1\n    roles: [wrker]\n"), 0o644)
	if _, _, err := maas(context.Background(), "cluster", "init", "-f", bad, "--out", filepath.Join(t.TempDir(), "s")); err == nil || !strings.Contains(err.Error(), `hosts[0].roles[0]`) {
		t.Fatalf("a bad cluster file: %v; want the field named", err)
	}
}
