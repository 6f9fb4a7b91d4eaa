package cli

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"go.uber.org/zap/zaptest"

	"github.com/maas-ml/maas/deploy/cluster"
	"github.com/maas-ml/maas/deploy/cluster/clustertest"
	"github.com/maas-ml/maas/internal/natsconn"
	"github.com/maas-ml/maas/internal/natsserver"
)

// TestConnectNATSWithCreds: a role with --nats-seed and --nats-ca gets
// into a NATS server started with the cluster's certificate and
// nats-users.conf; one with the CA but no seed is refused at once, told
// to pass --nats-seed.
func TestConnectNATSWithCreds(t *testing.T) {
	s := clustertest.New(t)
	c := natsserver.DefaultConfig()
	c.Port, c.TLSCert, c.TLSKey, c.AuthFile = -1, s.HostCert(), s.HostKey(), s.NATSUsers()
	srv, err := natsserver.Start(c)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()

	connect := func(creds natsCreds) (*nats.Conn, error) {
		opts, err := creds.connOptions()
		if err != nil {
			t.Fatal(err)
		}
		opts.Metrics = natsconn.NewMetrics(nil)
		return connectNATS(srv.ClientURL(), "test", zaptest.NewLogger(t), opts)
	}
	worker, err := connect(natsCreds{seed: s.Seed(t, cluster.KindWorker), ca: s.CA()})
	if err != nil {
		t.Fatalf("the worker with its seed and the CA: %v", err)
	}
	defer worker.Close()
	if !worker.IsConnected() {
		t.Error("the worker is not connected")
	}
	if nc, err := connect(natsCreds{ca: s.CA()}); err == nil {
		nc.Close()
		t.Error("a connection without a seed got in")
	} else if !errors.Is(err, natsconn.ErrCredentials) || !strings.Contains(err.Error(), "--nats-seed") {
		t.Errorf("without a seed: %v, want ErrCredentials naming --nats-seed", err)
	}
}

// TestSecurityFlagErrors: security flags that cannot work are refused
// before a role starts, naming the flag.
func TestSecurityFlagErrors(t *testing.T) {
	s := clustertest.New(t)
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		cmd  func() *cobra.Command
		args []string
		want string
	}{
		{coordinatorCmd, []string{"--tls-cert", s.HostCert()}, "--tls-cert/--tls-key"},
		{coordinatorCmd, []string{"--tls-cert", s.HostCert(), "--tls-key", s.CA()}, "--tls-cert/--tls-key"},
		{coordinatorCmd, []string{"--tokens", missing}, "--tokens"},
		{coordinatorCmd, []string{"--tokens", s.CA()}, "--tokens"},
		{coordinatorCmd, []string{"--join", "127.0.0.1:1", "--join-ca", missing}, "--join-ca"},
		{coordinatorCmd, []string{"--join", "127.0.0.1:1", "--join-token-file", missing}, "--join-token-file"},
		{workerCmd, []string{"--nats-seed", missing}, "--nats-seed"},
		{workerCmd, []string{"--nats-seed", s.CA()}, "--nats-seed"},
		{paramserverCmd, []string{"--nats-cert", s.HostCert(), "--nats-key", s.HostKey()}, "--nats-ca"},
		{paramserverCmd, []string{"--nats-ca", missing}, "--nats-ca"},
		{natsCmd, []string{"--tls-ca", s.CA(), "--port", "-1"}, "certificate"},
		{natsCmd, []string{"--auth", missing, "--port", "-1", "--store-dir", ""}, "authorization"},
		{serveCmd, []string{"--model-dir", "x", "--token-file", missing, "--tokens", s.TokensFile()}, "--tokens"},
		{serveCmd, []string{"--model-dir", "x", "--tls-key", s.HostKey()}, "--tls-cert"},
		{serveCmd, []string{"--server", "127.0.0.1:1", "--server-ca", missing}, "--server-ca"},
	} {
		cmd := tc.cmd()
		cmd.SetArgs(tc.args)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := cmd.ExecuteContext(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: %v, want an error naming %s", cmd.Name(), tc.args, err, tc.want)
		}
	}
}
