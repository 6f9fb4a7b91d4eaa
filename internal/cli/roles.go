package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/coordinator"
	"github.com/maas-ml/maas/deploy/cluster"
	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/member"
	"github.com/maas-ml/maas/internal/natsconn"
	"github.com/maas-ml/maas/internal/natsserver"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/paramserver"
	"github.com/maas-ml/maas/worker"
)

// DefaultNATS is the NATS URL roles use without --nats: the embedded
// server of `maas local` or `maas nats`.
const DefaultNATS = "nats://127.0.0.1:4222"

// signalContext is cancelled by SIGINT or SIGTERM.
func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// connectNATS connects a role to NATS, reconnecting for ever (see
// natsconn.Connect); o holds its credentials (natsCreds.connOptions), if
// any. A server that refuses them fails it at once, saying which flag to
// give.
func connectNATS(url, name string, log *zap.Logger, o natsconn.Options) (*nats.Conn, error) {
	o.Name, o.Logger = name, log
	return natsconn.Connect(url, o)
}

func natsCmd() *cobra.Command {
	c := natsserver.DefaultConfig()
	var routes, leafRemotes []string
	cmd := &cobra.Command{
		Use:   "nats",
		Short: "Run the embedded NATS server with JetStream (the cluster's bus)",
		Long: `nats runs the cluster's NATS server. It is open and plain unless given the files of
` + "`maas cluster init`" + `: --auth nats-users.conf lets in only the cluster's processes, each with
its role's permissions; --tls-cert and --tls-key make every client speak TLS, and
--tls-ca makes each present a certificate of the cluster's CA (and secures routes).
With --leaf-remotes it is a leaf node of other servers (a worker host's own server):
its clients reach the whole cluster, and a message crosses the leaf connection once
however many of them receive it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger()
			c.Routes, c.LeafRemotes = routes, leafRemotes
			s, err := natsserver.Start(c)
			if err != nil {
				return err
			}
			log.Info("NATS ready", zap.String("url", s.ClientURL()), zap.String("store", c.StoreDir),
				zap.Bool("tls", c.TLSCert != ""), zap.Bool("mutual_tls", c.TLSCA != ""), zap.Bool("auth", c.AuthFile != ""))
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			<-ctx.Done()
			s.Shutdown()
			s.WaitForShutdown()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Host, "host", c.Host, "address to listen on")
	f.IntVar(&c.Port, "port", c.Port, "client port")
	f.StringVar(&c.StoreDir, "store-dir", "nats-data", "JetStream data directory (empty: no JetStream)")
	f.StringVar(&c.ServerName, "name", "", "server name (required with --cluster-port)")
	f.StringVar(&c.ClusterName, "cluster-name", "maas", "cluster name for routes")
	f.IntVar(&c.ClusterPort, "cluster-port", 0, "port for routes from other NATS servers (0: no cluster)")
	f.StringSliceVar(&routes, "routes", nil, "routes to other NATS servers (nats://host:port)")
	f.IntVar(&c.LeafPort, "leaf-port", 0, "port for leaf connections from other hosts' NATS servers (0: none)")
	f.StringSliceVar(&leafRemotes, "leaf-remotes", nil, "be a leaf node of these NATS servers (nats://host:leaf_port); needs --store-dir \"\"")
	f.StringVar(&c.LeafSeed, "leaf-seed", "", "nkey seed the leaf connection authenticates with (<id>.nk from `maas cluster init`)")
	f.StringVar(&c.TLSCert, "tls-cert", "", "require TLS of every client, with this certificate (host-<name>.crt from `maas cluster init`)")
	f.StringVar(&c.TLSKey, "tls-key", "", "key of --tls-cert (host-<name>.key)")
	f.StringVar(&c.TLSCA, "tls-ca", "", "require client certificates signed by this CA (ca.crt), and check routes against it")
	f.StringVar(&c.RouteCA, "route-ca", "", "check the routes to the other NATS servers against this CA (ca.crt; mutual TLS) without asking clients for certificates")
	f.StringVar(&c.AuthFile, "auth", "", "let in only the users of this authorization file (nats-users.conf from `maas cluster init`)")
	return cmd
}

func coordinatorCmd() *cobra.Command {
	cfg := coordinator.DefaultConfig()
	var (
		natsURL, join         string
		tokensFile            string
		joinCA, joinTokenFile string
		apiTLS                serverTLSFlags
		creds                 natsCreds
		raftCA                string
		metricsAddr           string
	)
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run a coordinator node (Raft): the first bootstraps, the others --join it",
		Long: `coordinator runs a node of the control plane. Its API is plain HTTP and open unless
given the files of ` + "`maas cluster init`" + `: --tls-cert and --tls-key serve it over HTTPS
(--client-ca: mutual TLS), --tokens tokens.json wants a bearer token on every call
(read to look, submit to submit and cancel jobs, admin to add coordinators), and
--nats-seed/--nats-ca connect to a secured NATS, and --raft-ca ca.crt carries Raft
over mutual TLS with the same certificate. A node that --joins a secured
cluster gives --join-token-file admin.token and --join-ca ca.crt.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger()
			defer log.Sync()
			// The process's counters (NATS permissions violations, dropped
			// control messages) go to the default registry.
			cfg.Logger, cfg.Registerer = log, prometheus.DefaultRegisterer
			if join != "" {
				cfg.Bootstrap = false
			}
			var err error
			if cfg.TLS, err = apiTLS.config(); err != nil {
				return err
			}
			if cmd.Flags().Changed(strings.TrimPrefix(cluster.DataRootsFlag, "--")) && len(cfg.DataRoots) == 0 {
				cfg.DataRoots = []string{} // given empty: no dataset paths at all
			}
			if raftCA != "" {
				if cfg.RaftTLS, err = cluster.PeerTLS(raftCA, apiTLS.cert, apiTLS.key); err != nil {
					return fmt.Errorf("--raft-ca (with --tls-cert and --tls-key): %w", err)
				}
			}
			if tk, err := loadTokens(tokensFile); err != nil {
				return err
			} else if tk != nil {
				cfg.Tokens = tk
			}
			var jc *api.Client
			if join != "" {
				if jc, err = joinClient(join, joinCA, joinTokenFile, apiTLS); err != nil {
					return err
				}
			}
			natsOpts, err := creds.connOptions()
			if err != nil {
				return err
			}
			nc, err := connectNATS(natsURL, "coordinator "+cfg.ID, log, natsOpts)
			if err != nil {
				return err
			}
			defer nc.Close()
			n, err := coordinator.Open(cfg, nc)
			if err != nil {
				return err
			}
			defer n.Close()
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			if err := serveMetrics(ctx, metricsAddr, log); err != nil {
				return err
			}
			if jc != nil {
				if err := joinCluster(ctx, jc, api.JoinRequest{ID: cfg.ID, RaftAddr: cfg.RaftAddr, HTTPAddr: n.HTTPAddr()}); err != nil {
					return err
				}
			}
			log.Info("coordinator up", zap.String("id", cfg.ID), zap.String("raft", cfg.RaftAddr), zap.String("api", n.HTTPAddr()),
				zap.Bool("tls", cfg.TLS != nil), zap.Bool("raft_tls", cfg.RaftTLS != nil), zap.Bool("tokens", cfg.Tokens != nil), zap.Strings("data_roots", cfg.DataRoots))
			<-ctx.Done()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.ID, "id", "c1", "node id in the Raft cluster")
	f.StringVar(&cfg.RaftAddr, "raft", "127.0.0.1:7000", "Raft address (reachable by the other coordinators)")
	f.StringVar(&cfg.HTTPAddr, "api", "127.0.0.1:7070", "API address")
	f.StringVar(&cfg.DataDir, "data-dir", "coordinator-data", "Raft log, stable store and snapshots")
	f.BoolVar(&cfg.Bootstrap, "bootstrap", true, "start a new cluster when this node has no state (ignored with --join)")
	f.StringVar(&join, "join", "", "API address of a node of an existing cluster to join")
	f.StringVar(&natsURL, "nats", DefaultNATS, "NATS URL")
	f.DurationVar(&cfg.BarrierTimeout, "barrier-timeout", cfg.BarrierTimeout, "parameter servers' bound on a step's wait for its last gradient")
	f.StringSliceVar(&cfg.DataRoots, strings.TrimPrefix(cluster.DataRootsFlag, "--"), nil,
		"refuse jobs whose dataset.path is not inside one of these absolute directories (comma-separated; default: any path; \"\": no path, only pushed datasets)")
	apiTLS.addFlags(f, "the API")
	f.StringVar(&metricsAddr, "metrics-addr", "", metricsFlagUsage)
	f.StringVar(&cfg.ServeURL, "serve-url", "", "the serving endpoint's URL (http://host:8080), which the dashboard's models page tries models on through this node")
	f.StringVar(&raftCA, "raft-ca", "", "carry Raft over mutual TLS: present --tls-cert and accept only coordinators whose certificates this CA signed (ca.crt); every coordinator must use it")
	f.StringVar(&tokensFile, "tokens", "", "require an API token on every call: the cluster's tokens.json (from `maas cluster init`)")
	f.StringVar(&joinCA, "join-ca", "", "with --join: the CA of the cluster's API certificates (ca.crt); --join then uses https (default: --client-ca)")
	f.StringVar(&joinTokenFile, "join-token-file", "", "with --join: an admin API token file (admin.token), for a cluster started with --tokens")
	creds.addFlags(f)
	return cmd
}

// joinClient is the client a coordinator joins the cluster at addr with:
// over HTTPS when it has a CA for the cluster's certificates (presenting
// its own certificate, for a cluster with mutual TLS), with an admin
// token when given one.
func joinClient(addr, caFile, tokenFile string, own serverTLSFlags) (*api.Client, error) {
	if caFile == "" {
		caFile = own.clientCA
	}
	var opts []api.Option
	if caFile != "" {
		tc, err := cluster.ClientTLS(caFile, own.cert, own.key)
		if err != nil {
			return nil, fmt.Errorf("--join-ca: %w", err)
		}
		opts = append(opts, api.WithTLSConfig(tc))
		if !strings.Contains(addr, "://") {
			addr = "https://" + addr
		}
	}
	if tokenFile != "" {
		tok, err := readTokenFile("--join-token-file", tokenFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, api.WithToken(tok))
	}
	c, err := api.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("--join: %w", err)
	}
	return c, nil
}

// joinCluster asks the cluster c talks to to add this node, retrying until
// its leader answers (a follower redirects to it). A refusal for the
// token or a TLS failure will not pass by retrying: it ends the wait.
func joinCluster(ctx context.Context, c *api.Client, req api.JoinRequest) error {
	for {
		err := c.Join(ctx, req)
		if err == nil {
			return nil
		}
		if errors.Is(err, api.ErrUnauthorized) || errors.Is(err, api.ErrForbidden) || errors.Is(err, api.ErrTLS) {
			return fmt.Errorf("join %s: %w (an admin token with --join-token-file, the cluster's CA with --join-ca)", c.Server(), err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("join %s: %w", c.Server(), err)
		case <-time.After(time.Second):
		}
	}
}

func paramserverCmd() *cobra.Command {
	var natsURL, id, host, metricsAddr string
	var creds natsCreds
	sc := paramserver.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "paramserver",
		Short: "Run a parameter server: owns key ranges of the jobs it is assigned",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger()
			defer log.Sync()
			natsOpts, err := creds.connOptions()
			if err != nil {
				return err
			}
			nc, err := connectNATS(natsURL, "paramserver "+id, log, natsOpts)
			if err != nil {
				return err
			}
			defer nc.Close()
			sc.Logger, sc.Registerer = log, prometheus.DefaultRegisterer
			a := paramserver.NewAgent(nc, member.Config{ID: id, Host: host, Logger: log}, sc)
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			if err := serveMetrics(ctx, metricsAddr, log); err != nil {
				return err
			}
			return a.Run(ctx, nc)
		},
	}
	cmd.Flags().StringVar(&natsURL, "nats", DefaultNATS, "NATS URL")
	cmd.Flags().StringVar(&id, "id", member.DefaultID("ps"), "member id")
	cmd.Flags().StringVar(&host, "host", hostname(), "the host this server runs on: a job's parameter servers are taken on as many hosts as they can be, each host's link carrying its own ranges")
	cmd.Flags().StringVar(&metricsAddr, "metrics-addr", "", metricsFlagUsage)
	creds.addFlags(cmd.Flags())
	return cmd
}

// hostname is this machine's name, or "" when it has none.
func hostname() string {
	h, _ := os.Hostname()
	return h
}

func workerCmd() *cobra.Command {
	var natsURL, id, host, cacheDir, metricsAddr string
	var threads int
	var synthetic time.Duration
	var creds natsCreds
	var dev deviceFlags
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run a worker: trains its slice of each batch of the jobs it is assigned",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if synthetic < 0 {
				return fmt.Errorf("--synthetic-compute must not be negative, got %v", synthetic)
			}
			log := newLogger()
			defer log.Sync()
			b, closeBackend, err := dev.backend(threads)
			if err != nil {
				return err
			}
			defer closeBackend()
			natsOpts, err := creds.connOptions()
			if err != nil {
				return err
			}
			nc, err := connectNATS(natsURL, "worker "+id, log, natsOpts)
			if err != nil {
				return err
			}
			defer nc.Close()
			wc := worker.DefaultConfig()
			wc.Backend, wc.Logger, wc.CacheDir, wc.SyntheticCompute, wc.Registerer = b, log, cacheDir, synthetic, prometheus.DefaultRegisterer
			if !dev.onCPU() {
				wc.NewDeviceTrainer = func(spec nn.ModelSpec, batch int) (worker.DeviceTrainer, error) {
					dt, err := newDeviceTrainer(b, spec, batch, nil, log) // the servers update θ
					if dt == nil {
						return nil, err
					}
					return dt, nil
				}
			}
			a := worker.NewAgent(nc, member.Config{ID: id, Host: host, Threads: b.Threads(), Device: describeDevice(b), Logger: log}, wc)
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			if err := serveMetrics(ctx, metricsAddr, log); err != nil {
				return err
			}
			return a.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&natsURL, "nats", DefaultNATS, "NATS URL")
	cmd.Flags().StringVar(&id, "id", member.DefaultID("worker"), "member id")
	cmd.Flags().StringVar(&host, "host", hostname(), "the host this worker runs on, as its members are grouped (a job with aggregation: host sums the gradients of each host's workers before pushing them)")
	cmd.Flags().StringVar(&metricsAddr, "metrics-addr", "", metricsFlagUsage)
	cmd.Flags().IntVar(&threads, "threads", 0, "cores to use (0: all)")
	dev.add(cmd.Flags())
	cmd.Flags().StringVar(&cacheDir, "cache-dir", "", "where to keep the shards of pushed datasets (`maas data push`) fetched from the Object Store (default: <user cache dir>/maas/data)")
	cmd.Flags().DurationVar(&synthetic, "synthetic-compute", 0, "benchmark jobs only: one sample's compute time on this worker, in place of the job's benchmark.synthetic_compute (a slower or faster host; see docs/scaling.md)")
	creds.addFlags(cmd.Flags())
	return cmd
}
