package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/maas-ml/maas/coordinator"
	"github.com/maas-ml/maas/deploy/cluster/clustertest"
	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/auth"
	"github.com/maas-ml/maas/internal/natsserver"
)

// securedCoordinator starts a real one-node coordinator whose API speaks
// TLS with the test cluster's certificate and checks its tokens, and
// returns its https:// address.
func securedCoordinator(t *testing.T, s *clustertest.Secrets) string {
	t.Helper()
	nsc := natsserver.DefaultConfig()
	nsc.Port = -1
	ns, err := natsserver.Start(nsc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	cfg := coordinator.DefaultConfig()
	cfg.ID, cfg.RaftAddr, cfg.HTTPAddr, cfg.DataDir, cfg.Bootstrap = "c1", "127.0.0.1:0", "127.0.0.1:0", t.TempDir(), true
	cfg.HeartbeatTimeout, cfg.ElectionTimeout = 300*time.Millisecond, 300*time.Millisecond
	cfg.TLS, cfg.Tokens = s.ServerTLS(t, false), s.Tokens(t)
	n, err := coordinator.Open(cfg, nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := n.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return "https://" + n.HTTPAddr()
}

// TestLogin: against a coordinator with TLS and tokens, remote commands
// fail with what to do until `maas login` saves a context (0600); then
// they go to it without --server, with its CA and token, and a read token
// is refused a submit naming both roles. A login whose credentials the
// coordinator refuses saves nothing.
func TestLogin(t *testing.T) {
	s, other := clustertest.New(t), clustertest.New(t)
	config := filepath.Join(t.TempDir(), "maas", "config.yaml")
	t.Setenv(ConfigEnv, config)
	t.Setenv("MAAS_SERVER", "")
	server := securedCoordinator(t, s)
	ctx := context.Background()

	_, _, err := maas(ctx, "job", "ls", "--server", server)
	if !errors.Is(err, api.ErrTLS) || !strings.Contains(err.Error(), "--ca") {
		t.Fatalf("job ls without a CA: %v, want a TLS error naming --ca", err)
	}
	_, _, err = maas(ctx, "login", "--server", server, "--ca", s.CA())
	if !errors.Is(err, api.ErrUnauthorized) || !strings.Contains(err.Error(), "the server needs a token: run `maas login --server "+server) {
		t.Fatalf("login without a token: %v, want 401 and how to log in", err)
	}
	_, _, err = maas(ctx, "login", "--server", server, "--ca", other.CA(), "--token-file", s.TokenFile(auth.RoleRead))
	if !errors.Is(err, api.ErrTLS) {
		t.Fatalf("login with another cluster's CA: %v, want a TLS error", err)
	}
	if _, err := os.Stat(config); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused login wrote %s: %v", config, err)
	}

	out, _, err := maas(ctx, "login", "--server", server, "--ca", s.CA(), "--token-file", s.TokenFile(auth.RoleRead), "--name", "lab")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"lab"`) || !strings.Contains(out, config) {
		t.Errorf("login said %q", out)
	}
	st, err := os.Stat(config)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config: %v, mode %v; want a 0600 file", err, st.Mode())
	}
	b, _ := os.ReadFile(config)
	if !strings.Contains(string(b), "current: lab") || !strings.Contains(string(b), s.Token(t, auth.RoleRead)) {
		t.Errorf("config lacks the current context or its token:\n%s", b)
	}

	_, stderr, err := maas(ctx, "job", "ls")
	if err != nil {
		t.Fatalf("job ls after login: %v", err)
	}
	if !strings.Contains(stderr, "no jobs yet") {
		t.Errorf("job ls said %q, want the coordinator's empty list", stderr)
	}
	hostPort := strings.TrimPrefix(server, "https://")
	if _, _, err := maas(ctx, "cluster", "status", "--server", hostPort); err != nil {
		t.Errorf("cluster status --server host:port of the context: %v", err)
	}
	_, _, err = maas(ctx, "job", "submit", "-f", writeSpec(t, spec))
	if !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "token has role read; this needs submit") {
		t.Errorf("submit with a read token: %v, want 403 naming the roles", err)
	}

	// A second login to the server, with a submit token, replaces the
	// token of its context and keeps its name and CA.
	if _, _, err := maas(ctx, "login", "--server", server, "--token-file", s.TokenFile(auth.RoleSubmit)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(config); strings.Count(string(b), "name:") != 1 || !strings.Contains(string(b), s.Token(t, auth.RoleSubmit)) {
		t.Errorf("after a second login the config is:\n%s\nwant the one context lab with the submit token", b)
	}
	_, _, err = maas(ctx, "job", "submit", "-f", writeSpec(t, "name: x\nepochs: -1\n"))
	if !errors.Is(err, api.ErrBadRequest) {
		t.Errorf("submit with a submit token: %v, want the coordinator's 400 for the spec", err)
	}

	// A context file others can read is refused.
	os.Chmod(config, 0o644)
	if _, _, err := maas(ctx, "job", "ls"); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("job ls with a 0644 config: %v, want a refusal saying chmod 600", err)
	}
}
