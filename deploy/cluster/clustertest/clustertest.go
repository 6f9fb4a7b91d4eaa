// Package clustertest makes real cluster secrets for tests: Init of
// package deploy/cluster run on a one-host cluster file in a temporary
// directory. Host h1, at 127.0.0.1, runs every role, so its certificate
// is good for servers on loopback.
package clustertest

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/maas-ml/maas/deploy/cluster"
	"github.com/maas-ml/maas/internal/auth"
	"github.com/maas-ml/maas/internal/natsserver"
)

// Host is the name of the test cluster's one host.
const Host = "h1"

// clusterYAML is the test cluster file.
const clusterYAML = `name: test
ssh: {agent: true}
hosts:
  - name: h1
    address: 127.0.0.1
    roles: [nats, coordinator, paramserver, worker, serve]
`

// Secrets are the secrets of a test cluster, in Dir.
type Secrets struct {
	Dir  string
	File *cluster.File
}

// New writes the cluster file to a temporary directory, runs Init on it
// and returns the secrets. Each call makes a new CA.
func New(t testing.TB) *Secrets {
	t.Helper()
	return NewFromYAML(t, clusterYAML)
}

// TwoWorkers is a cluster file like New's whose host runs two workers,
// h1-worker-1 and h1-worker-2.
const TwoWorkers = clusterYAML + `    worker: {count: 2}
`

// NewFromYAML is New for the cluster file text (whose hosts are on
// loopback, like New's).
func NewFromYAML(t testing.TB, text string) *Secrets {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := cluster.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s := &Secrets{Dir: filepath.Join(dir, "secrets"), File: f}
	if _, err := cluster.Init(f, s.Dir, cluster.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	return s
}

// Path is the path of the secrets file name.
func (s *Secrets) Path(name string) string { return filepath.Join(s.Dir, name) }

// CA is the path of the CA's certificate.
func (s *Secrets) CA() string { return s.Path(cluster.CACertFile) }

// HostCert and HostKey are the paths of the host's certificate and key.
func (s *Secrets) HostCert() string { return s.Path(cluster.HostCertFile(Host)) }
func (s *Secrets) HostKey() string  { return s.Path(cluster.HostKeyFile(Host)) }

// TokensFile is the path of tokens.json; NATSUsers of nats-users.conf.
func (s *Secrets) TokensFile() string { return s.Path(cluster.TokensFile) }
func (s *Secrets) NATSUsers() string  { return s.Path(cluster.NATSUsersFile) }

// ID is the process id of the host's first process of kind k.
func (s *Secrets) ID(t testing.TB, k cluster.Kind) string {
	t.Helper()
	ps := s.File.ProcessesOf(k)
	if len(ps) == 0 {
		t.Fatalf("clustertest: no %s process", k)
	}
	return ps[0].ID
}

// Seed is the path of the NATS seed of the first process of kind k.
func (s *Secrets) Seed(t testing.TB, k cluster.Kind) string {
	t.Helper()
	return s.Path(cluster.SeedFile(s.ID(t, k)))
}

// TokenFile is the path of the API token file of role r.
func (s *Secrets) TokenFile(r auth.Role) string { return s.Path(cluster.TokenFile(r)) }

// Token is the API token of role r.
func (s *Secrets) Token(t testing.TB, r auth.Role) string {
	t.Helper()
	b, err := os.ReadFile(s.TokenFile(r))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// Tokens loads tokens.json.
func (s *Secrets) Tokens(t testing.TB) *auth.Tokens {
	t.Helper()
	tk, err := auth.LoadTokens(s.TokensFile())
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// ServerTLS is the host's server configuration; with mutual, clients must
// present a certificate of the CA.
func (s *Secrets) ServerTLS(t testing.TB, mutual bool) *tls.Config {
	t.Helper()
	ca := ""
	if mutual {
		ca = s.CA()
	}
	c, err := cluster.ServerTLS(s.HostCert(), s.HostKey(), ca)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ClientTLS trusts the CA; withCert also presents the host's certificate.
func (s *Secrets) ClientTLS(t testing.TB, withCert bool) *tls.Config {
	t.Helper()
	cert, key := "", ""
	if withCert {
		cert, key = s.HostCert(), s.HostKey()
	}
	c, err := cluster.ClientTLS(s.CA(), cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// PeerTLS is the host's mutual TLS configuration for links between
// cluster processes (the coordinators' Raft).
func (s *Secrets) PeerTLS(t testing.TB) *tls.Config {
	t.Helper()
	c, err := cluster.PeerTLS(s.CA(), s.HostCert(), s.HostKey())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// StartNATS starts an embedded NATS server secured with the host's
// certificate (server-side TLS) and nats-users.conf, stopped when the test
// ends, and returns its client URL.
func (s *Secrets) StartNATS(t testing.TB) string {
	t.Helper()
	return s.NATSServer(t, false).ClientURL()
}

// NATSServer starts an embedded NATS server with the host's certificate
// and nats-users.conf (mutual: clients must also present a certificate of
// the CA), stopped when the test ends.
func (s *Secrets) NATSServer(t testing.TB, mutual bool) *server.Server {
	t.Helper()
	c := natsserver.DefaultConfig()
	c.Port, c.TLSCert, c.TLSKey, c.AuthFile = -1, s.HostCert(), s.HostKey(), s.NATSUsers()
	if mutual {
		c.TLSCA = s.CA()
	}
	srv, err := natsserver.Start(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}
