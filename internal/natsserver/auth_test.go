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
	"github.com/maas-ml/maas/internal/wire"
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

// leafCluster is a two-host cluster on loopback: h1 runs the full NATS
// member and a parameter server, h2 (at 127.0.0.2) a leaf NATS server and
// three workers.
const leafCluster = `name: test
ssh: {agent: true}
hosts:
  - name: h1
    address: 127.0.0.1
    roles: [nats, coordinator, paramserver]
  - name: h2
    address: 127.0.0.2
    roles: [nats, worker]
    nats: {port: 4223, leaf: true}
    worker: {count: 3}
`

// TestSecuredLeaf: a leaf server connects to a secured hub over mutual
// TLS as its own NATS user (h2-nats.nk); the host's workers, connected to
// the leaf, push to a parameter server on the hub and get its parameters,
// one crossing of the leaf connection for the three of them. A leaf
// without its seed, or with a certificate of another CA, is refused.
func TestSecuredLeaf(t *testing.T) {
	s, other := clustertest.NewFromYAML(t, leafCluster), clustertest.NewFromYAML(t, leafCluster)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lp := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	hc := natsserver.DefaultConfig()
	hc.Port, hc.TLSCert, hc.TLSKey, hc.RouteCA, hc.AuthFile = -1, s.Path(cluster.HostCertFile("h1")), s.Path(cluster.HostKeyFile("h1")), s.CA(), s.NATSUsers()
	hc.ServerName, hc.LeafPort, hc.StoreDir = "h1-nats", lp, t.TempDir()
	hub, err := natsserver.Start(hc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Shutdown(); hub.WaitForShutdown() })

	leafConfig := func(s *clustertest.Secrets, seed bool) natsserver.Config {
		c := natsserver.DefaultConfig()
		c.Host, c.Port, c.TLSCert, c.TLSKey, c.RouteCA, c.AuthFile = "127.0.0.2", -1, s.Path(cluster.HostCertFile("h2")), s.Path(cluster.HostKeyFile("h2")), s.CA(), s.NATSUsers()
		c.ServerName, c.LeafRemotes = "h2-nats", []string{"nats://127.0.0.1:" + strconv.Itoa(lp)}
		if seed {
			c.LeafSeed = s.Path(cluster.SeedFile("h2-nats"))
		}
		return c
	}
	for _, bad := range []struct {
		name string
		c    natsserver.Config
	}{{"without its seed", leafConfig(s, false)}, {"of another CA", leafConfig(other, true)}} {
		srv, err := natsserver.Start(bad.c)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		if n := hub.NumLeafNodes(); n != 0 {
			t.Errorf("a leaf %s: the hub has %d leaf connections", bad.name, n)
		}
		srv.Shutdown()
		srv.WaitForShutdown()
	}
	leaf, err := natsserver.Start(leafConfig(s, true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { leaf.Shutdown(); leaf.WaitForShutdown() })
	deadline := time.Now().Add(10 * time.Second)
	for hub.NumLeafNodes() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the leaf with its seed did not connect to the hub")
		}
		time.Sleep(20 * time.Millisecond)
	}

	as := func(srv *server.Server, id string) *nats.Conn {
		seed, err := os.ReadFile(s.Path(cluster.SeedFile(id)))
		if err != nil {
			t.Fatal(err)
		}
		o, err := nats.NkeyOptionFromSeed(s.Path(cluster.SeedFile(id)))
		if err != nil || len(seed) == 0 {
			t.Fatal(err)
		}
		nc, err := nats.Connect(srv.ClientURL(), o, nats.Secure(s.ClientTLS(t, false)), nats.MaxReconnects(0))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	ps := as(hub, "h1-paramserver-1")
	if _, err := ps.Subscribe(wire.GradSubjects("j", 0), func(m *nats.Msg) { m.Respond([]byte("ack")) }); err != nil {
		t.Fatal(err)
	}
	ps.Flush()
	got := make(chan []byte, 3)
	var workers []*nats.Conn
	for i := 1; i <= 3; i++ {
		w := as(leaf, "h2-worker-"+strconv.Itoa(i))
		if _, err := w.Subscribe(wire.ParamSubject("j"), func(m *nats.Msg) { got <- m.Data }); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		workers = append(workers, w)
	}
	var reply *nats.Msg
	for try := 0; ; try++ {
		reply, err = workers[0].Request(wire.GradSubject("j", 0, "h2-worker-1"), []byte("g"), time.Second)
		if err == nil || try == 100 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || string(reply.Data) != "ack" {
		for _, srv := range []*server.Server{hub, leaf} {
			z, _ := srv.Leafz(&server.LeafzOptions{Subscriptions: true})
			for _, l := range z.Leafs {
				t.Logf("%s: leaf %s subs %v", srv.Name(), l.Name, l.Subs)
			}
		}
		t.Fatalf("a worker's push through the leaf: %v", err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for len(got) < 3 { // until the workers' interest has reached the hub
		ps.Publish(wire.ParamSubject("j"), []byte("probe"))
		time.Sleep(100 * time.Millisecond)
		if time.Now().After(deadline) {
			t.Fatal("the workers on the leaf never received the parameter server's message")
		}
	}
	time.Sleep(200 * time.Millisecond)
	for len(got) > 0 {
		<-got
	}
	lz := func() int64 {
		z, _ := hub.Leafz(nil)
		var n int64
		for _, l := range z.Leafs {
			n += l.OutMsgs
		}
		return n
	}
	before := lz()
	ps.Publish(wire.ParamSubject("j"), []byte("theta"))
	for range 3 {
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("a worker on the leaf did not get θ")
		}
	}
	if n := lz() - before; n != 1 {
		t.Errorf("θ crossed the leaf connection %d times for 3 workers, want once", n)
	}
}
