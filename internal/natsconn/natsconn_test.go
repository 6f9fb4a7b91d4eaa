package natsconn_test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap/zaptest"

	"github.com/maas-ml/maas/deploy/cluster"
	"github.com/maas-ml/maas/deploy/cluster/clustertest"
	"github.com/maas-ml/maas/internal/natsconn"
	"github.com/maas-ml/maas/internal/natsserver"
	"github.com/maas-ml/maas/internal/wire"
)

// start starts a NATS server: with the test cluster's certificate and
// users when s is not nil (mutual: clients must present a certificate),
// else open and plain.
func start(t *testing.T, s *clustertest.Secrets, mutual bool) *server.Server {
	t.Helper()
	if s != nil {
		return s.NATSServer(t, mutual)
	}
	c := natsserver.DefaultConfig()
	c.Port, c.StoreDir = -1, ""
	srv, err := natsserver.Start(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

// creds are the options of a process of kind (none: no seed) of secrets
// s, trusting ca's CA (nil: no TLS asked for), with s's host certificate
// when cert.
func creds(t *testing.T, s *clustertest.Secrets, kind cluster.Kind, ca *clustertest.Secrets, cert bool) natsconn.Options {
	t.Helper()
	o := natsconn.Options{Name: string(kind), Logger: zaptest.NewLogger(t), Metrics: natsconn.NewMetrics(nil)}
	if kind != "" {
		o.Seed = s.Seed(t, kind)
		seed, err := nats.NkeyOptionFromSeed(o.Seed)
		if err != nil {
			t.Fatal(err)
		}
		o.Credentials = append(o.Credentials, seed)
	}
	if ca != nil {
		o.CA = ca.CA()
		if cert {
			o.Cert = s.HostCert()
		}
		o.Credentials = append(o.Credentials, nats.Secure(ca.ClientTLS(t, cert)))
	}
	return o
}

// TestConnectRefused: a secured NATS server refuses a process without a
// seed, with another cluster's seed, without TLS, trusting another CA and,
// with mutual TLS, without a client certificate; Connect fails at once
// with an error that names the flag to give. A plain server refuses a
// process that asks for TLS.
func TestConnectRefused(t *testing.T) {
	s, other := clustertest.New(t), clustertest.New(t)
	srv, mutual, plain := start(t, s, false), start(t, s, true), start(t, nil, false)
	for _, tc := range []struct {
		name, url string // url: the server's own when empty
		srv       *server.Server
		o         natsconn.Options
		want      error
		says      string
	}{
		{"no credentials", "", srv, creds(t, s, "", s, false), natsconn.ErrCredentials, "pass --nats-seed"},
		{"another cluster's seed", "", srv, creds(t, other, cluster.KindWorker, s, false), natsconn.ErrCredentials, "does not know the user of --nats-seed"},
		{"plaintext", strings.Replace(srv.ClientURL(), "tls://", "nats://", 1), srv, creds(t, s, cluster.KindWorker, nil, false), natsconn.ErrTLS, "requires TLS: pass --nats-ca"},
		{"another CA", "", srv, creds(t, s, cluster.KindWorker, other, false), natsconn.ErrTLS, "is not signed by --nats-ca"},
		{"no client certificate", "", mutual, creds(t, s, cluster.KindWorker, s, false), natsconn.ErrTLS, "pass --nats-cert and --nats-key"},
		{"TLS to a plain server", "", plain, creds(t, s, "", s, false), natsconn.ErrTLS, "does not speak TLS"},
	} {
		if tc.url == "" {
			tc.url = tc.srv.ClientURL()
		}
		start := time.Now()
		nc, err := natsconn.Connect(tc.url, tc.o)
		if err == nil {
			nc.Close()
			t.Errorf("%s: connected", tc.name)
			continue
		}
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), tc.url) {
			t.Errorf("%s: %v; want %v saying %q and naming the server", tc.name, err, tc.want, tc.says)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: refused after %v, want at once", tc.name, d)
		}
	}
	for name, c := range map[string]struct {
		srv *server.Server
		o   natsconn.Options
	}{
		"the worker over TLS":                  {srv, creds(t, s, cluster.KindWorker, s, false)},
		"the worker with its host certificate": {mutual, creds(t, s, cluster.KindWorker, s, true)},
		"a plain server":                       {plain, natsconn.Options{}},
	} {
		nc, err := natsconn.Connect(c.srv.ClientURL(), c.o)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !nc.IsConnected() {
			t.Errorf("%s: not connected", name)
		}
		nc.Close()
	}
}

// TestConnectBeforeServer: a server that is not up yet is retried in the
// background: Connect returns a connection that connects once it is.
func TestConnectBeforeServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	nc, err := natsconn.Connect(fmt.Sprintf("nats://127.0.0.1:%d", port), natsconn.Options{Logger: zaptest.NewLogger(t), Metrics: natsconn.NewMetrics(nil), ReconnectWait: 20 * time.Millisecond})
	if err != nil {
		t.Fatalf("Connect before the server: %v", err)
	}
	defer nc.Close()
	c := natsserver.DefaultConfig()
	c.Port, c.StoreDir = port, ""
	srv, err := natsserver.Start(c)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	deadline := time.Now().Add(10 * time.Second)
	for !nc.IsConnected() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !nc.IsConnected() {
		t.Fatal("not connected after the server started")
	}
}

// TestPermissionViolationsCounted: a worker's publish of parameters and
// of another worker's gradients, and its subscription to another
// member's assignments, are refused by the server, counted by kind and
// logged; its own gradients go through uncounted.
func TestPermissionViolationsCounted(t *testing.T) {
	s := clustertest.New(t)
	srv := start(t, s, false)
	o := creds(t, s, cluster.KindWorker, s, false)
	nc, err := natsconn.Connect(srv.ClientURL(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	id := s.ID(t, cluster.KindWorker)
	nc.Publish(wire.ParamSubject("j"), []byte("forged θ"))
	nc.Publish(wire.GradSubject("j", 0, "someone-else"), []byte("forged g"))
	nc.Publish(wire.GradSubject("j", 0, id), []byte("g"))
	nc.SubscribeSync(wire.MemberSubject("someone-else"))
	nc.Flush()
	m := o.Metrics
	want := map[[2]string]float64{{"publish", "param"}: 1, {"publish", "grad"}: 1, {"subscribe", "ctl"}: 1}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok := true
		for k, v := range want {
			ok = ok && m.Violations(k[0], k[1]) == v
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			for k, v := range want {
				t.Errorf("%s %s violations: %v, want %v", k[0], k[1], m.Violations(k[0], k[1]), v)
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSubjectKind(t *testing.T) {
	for subject, want := range map[string]string{
		"maas.param.j": "param", "maas.grad.j.0.w": "grad", "maas.ctl.heartbeat.w": "ctl", "maas.assign.j": "assign",
		"$JS.API.STREAM.INFO.OBJ_maas-models": "objectstore", "$O.maas-models.C.x": "objectstore", "_INBOX.x": "inbox",
		"maas.secret.x": "other", "foo": "other",
	} {
		if got := natsconn.SubjectKind(subject); got != want {
			t.Errorf("SubjectKind(%q) = %q, want %q", subject, got, want)
		}
	}
}
