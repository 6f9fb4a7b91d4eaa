package natsserver_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/maas-ml/maas/deploy/cluster"
	"github.com/maas-ml/maas/deploy/cluster/clustertest"
	"github.com/maas-ml/maas/internal/natsserver"
)

// startSecured starts a server with the test cluster's TLS certificate and
// nats-users.conf; mutual also makes clients present a certificate.
func startSecured(t *testing.T, s *clustertest.Secrets, mutual bool) *server.Server {
	t.Helper()
	return s.NATSServer(t, mutual)
}

// connect connects to srv as the process of kind (none: no nkey) over TLS
// with tc (nil: plain), without retrying.
func connect(t *testing.T, srv *server.Server, s *clustertest.Secrets, kind cluster.Kind, tc *tls.Config, opts ...nats.Option) (*nats.Conn, error) {
	t.Helper()
	if kind != "" {
		o, err := nats.NkeyOptionFromSeed(s.Seed(t, kind))
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, o)
	}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	nc, err := nats.Connect(srv.ClientURL(), append(opts, nats.MaxReconnects(0), nats.Timeout(5*time.Second))...)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, err
}

// TestSecuredServerRefuses: a server with certificates and the users of
// nats-users.conf refuses a client without an nkey, a client that does not
// speak TLS, a client that trusts another CA and, with mutual TLS, one
// without a certificate; a process with its seed over TLS gets in.
func TestSecuredServerRefuses(t *testing.T) {
	s, other := clustertest.New(t), clustertest.New(t)
	srv := startSecured(t, s, false)

	if _, err := connect(t, srv, s, "", s.ClientTLS(t, false)); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("no credentials: %v, want an authorization violation", err)
	}
	if got := plaintextPing(t, srv); strings.Contains(got, "PONG") || !strings.Contains(got, `"tls_required":true`) {
		t.Errorf("a plaintext client read %q: want an INFO requiring TLS and no PONG", got)
	}
	var verr *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	if _, err := connect(t, srv, s, cluster.KindWorker, other.ClientTLS(t, false)); !errors.As(err, &verr) || !errors.As(err, &unknown) {
		t.Errorf("a client of another CA: %v, want a certificate verification error", err)
	}
	if _, err := connect(t, srv, s, cluster.KindWorker, s.ClientTLS(t, false)); err != nil {
		t.Errorf("the worker with its seed over TLS: %v", err)
	}

	mutual := startSecured(t, s, true)
	if _, err := connect(t, mutual, s, cluster.KindWorker, s.ClientTLS(t, false)); err == nil {
		t.Error("mutual TLS: a client without a certificate got in")
	}
	if _, err := connect(t, mutual, s, cluster.KindWorker, s.ClientTLS(t, true)); err != nil {
		t.Errorf("mutual TLS with the host's certificate: %v", err)
	}
}

// plaintextPing speaks NATS without TLS to srv (CONNECT, PING) and returns
// all it reads until the server closes the connection.
func plaintextPing(t *testing.T, srv *server.Server) string {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	info, _ := r.ReadString('\n')
	conn.Write([]byte("CONNECT {\"verbose\":false}\r\nPING\r\n"))
	rest, _ := io.ReadAll(r)
	return info + string(rest)
}

// TestPermissions: the users of nats-users.conf are held to their role's
// permissions: a worker publishing parameters gets a permissions
// violation and its message reaches no one, while the parameter server's
// is delivered.
func TestPermissions(t *testing.T) {
	s := clustertest.New(t)
	srv := startSecured(t, s, false)
	tc := s.ClientTLS(t, false)
	violations := make(chan error, 4)
	onErr := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err })
	worker, err := connect(t, srv, s, cluster.KindWorker, tc, onErr)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := connect(t, srv, s, cluster.KindParamServer, tc)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := worker.SubscribeSync("maas.param.x") // workers hear parameters
	if err != nil {
		t.Fatal(err)
	}
	worker.Flush()

	if err := worker.Publish("maas.param.x", []byte("forged")); err != nil {
		t.Fatal(err)
	}
	worker.Flush()
	select {
	case err := <-violations:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), "maas.param.x") {
			t.Errorf("the worker's publish: %v, want a permissions violation on maas.param.x", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a worker published parameters without a permissions violation")
	}

	if err := ps.Publish("maas.param.x", []byte("theta")); err != nil {
		t.Fatal(err)
	}
	ps.Flush()
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil || string(m.Data) != "theta" {
		t.Fatalf("the parameter server's publish: %v, %v; want it delivered", m, err)
	}
	if m, err := sub.NextMsg(50 * time.Millisecond); err == nil {
		t.Errorf("a second message %q arrived: the forged one got through", m.Data)
	}
}

// TestSecuredConfigErrors: files that cannot work together are refused
// before the server starts, naming what is missing.
func TestSecuredConfigErrors(t *testing.T) {
	s := clustertest.New(t)
	empty := filepath.Join(t.TempDir(), "empty.conf")
	os.WriteFile(empty, []byte("# nothing\n"), 0o600)
	for name, tc := range map[string]struct {
		edit func(*natsserver.Config)
		want error
	}{
		"cert without key":      {func(c *natsserver.Config) { c.TLSCert = s.HostCert() }, natsserver.ErrTLS},
		"CA without cert":       {func(c *natsserver.Config) { c.TLSCA = s.CA() }, natsserver.ErrTLS},
		"route CA without cert": {func(c *natsserver.Config) { c.RouteCA = s.CA() }, natsserver.ErrTLS},
		"TLS routes, no CA": {func(c *natsserver.Config) {
			c.TLSCert, c.TLSKey, c.ClusterPort, c.ServerName, c.ClusterName = s.HostCert(), s.HostKey(), 6222, "a", "maas"
		}, natsserver.ErrTLS},
		"key of another":     {func(c *natsserver.Config) { c.TLSCert, c.TLSKey = s.HostCert(), s.CA() }, natsserver.ErrTLS},
		"missing auth file":  {func(c *natsserver.Config) { c.AuthFile = filepath.Join(t.TempDir(), "nope.conf") }, natsserver.ErrAuth},
		"auth without users": {func(c *natsserver.Config) { c.AuthFile = empty }, natsserver.ErrAuth},
	} {
		c := natsserver.DefaultConfig()
		c.Port = -1
		tc.edit(&c)
		srv, err := natsserver.Start(c)
		if err == nil {
			srv.Shutdown()
			srv.WaitForShutdown()
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

// TestRoutesOverTLS: servers with RouteCA route to each other over mutual
// TLS while their clients connect by nkey over server-only TLS; a server
// whose certificate another CA signed forms no route with them.
func TestRoutesOverTLS(t *testing.T) {
	s, other := clustertest.New(t), clustertest.New(t)
	port := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}
	start := func(sec *clustertest.Secrets, name string, clusterPort int, routes ...string) *server.Server {
		c := natsserver.DefaultConfig()
		c.Port, c.ServerName, c.ClusterName, c.ClusterPort, c.Routes = -1, name, "maas", clusterPort, routes
		c.TLSCert, c.TLSKey, c.RouteCA, c.AuthFile = sec.HostCert(), sec.HostKey(), sec.CA(), sec.NATSUsers()
		srv, err := natsserver.Start(c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
		return srv
	}
	pa := port()
	route := "nats://127.0.0.1:" + strconv.Itoa(pa)
	a := start(s, "a", pa)
	b := start(s, "b", port(), route)
	x := start(other, "x", port(), route)
	deadline := time.Now().Add(10 * time.Second)
	for a.NumRoutes() == 0 || b.NumRoutes() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the servers of one CA formed no route over TLS")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // x has tried by now
	if x.NumRoutes() != 0 {
		t.Errorf("a server of another CA routed: it has %d routes", x.NumRoutes())
	}
	// Clients need no certificate: TLS to the server, their nkey for who.
	na, err := connect(t, a, s, cluster.KindWorker, s.ClientTLS(t, false))
	if err != nil {
		t.Fatalf("a worker without a client certificate: %v", err)
	}
	nb, err := connect(t, b, s, cluster.KindCoordinator, s.ClientTLS(t, false))
	if err != nil {
		t.Fatalf("a coordinator without a client certificate: %v", err)
	}
	sub, err := na.SubscribeSync("maas.assign.j1")
	if err != nil {
		t.Fatal(err)
	}
	na.Flush()
	for {
		nb.Publish("maas.assign.j1", []byte("hi"))
		if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
			if string(m.Data) != "hi" {
				t.Fatalf("got %q", m.Data)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("an assignment published on b never reached a subscriber on a over the TLS route")
		}
	}
}
