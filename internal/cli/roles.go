package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/coordinator"
	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/member"
	"github.com/maas-ml/maas/internal/natsserver"
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

// connectNATS connects a role to NATS, reconnecting for ever.
func connectNATS(url, name string, log *zap.Logger) (*nats.Conn, error) {
	// RetryOnFailedConnect: a role may start before its NATS server; it
	// keeps trying, as it does after losing the connection.
	nc, err := nats.Connect(url, nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS reconnected", zap.String("url", c.ConnectedUrl())) }))
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w (start one with `maas nats` or `maas local --no-job`)", url, err)
	}
	go func() {
		time.Sleep(5 * time.Second)
		if !nc.IsConnected() && !nc.IsClosed() {
			log.Warn("still no NATS server; retrying (start one with `maas nats`)", zap.String("url", url))
		}
	}()
	return nc, nil
}

func natsCmd() *cobra.Command {
	c := natsserver.DefaultConfig()
	var routes []string
	cmd := &cobra.Command{
		Use:   "nats",
		Short: "Run the embedded NATS server with JetStream (the cluster's bus)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger()
			c.Routes = routes
			s, err := natsserver.Start(c)
			if err != nil {
				return err
			}
			log.Info("NATS ready", zap.String("url", s.ClientURL()), zap.String("store", c.StoreDir))
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
	return cmd
}

func coordinatorCmd() *cobra.Command {
	cfg := coordinator.DefaultConfig()
	var natsURL, join string
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run a coordinator node (Raft): the first bootstraps, the others --join it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger()
			defer log.Sync()
			cfg.Logger = log
			if join != "" {
				cfg.Bootstrap = false
			}
			nc, err := connectNATS(natsURL, "coordinator "+cfg.ID, log)
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
			if join != "" {
				if err := joinCluster(ctx, join, api.JoinRequest{ID: cfg.ID, RaftAddr: cfg.RaftAddr, HTTPAddr: n.HTTPAddr()}); err != nil {
					return err
				}
			}
			log.Info("coordinator up", zap.String("id", cfg.ID), zap.String("raft", cfg.RaftAddr), zap.String("api", n.HTTPAddr()))
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
	return cmd
}

// joinCluster asks the cluster at addr to add this node, retrying until its
// leader answers (a follower redirects to it).
func joinCluster(ctx context.Context, addr string, req api.JoinRequest) error {
	c, err := api.NewClient(addr)
	if err != nil {
		return err
	}
	for {
		err := c.Join(ctx, req)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("join %s: %w", addr, err)
		case <-time.After(time.Second):
		}
	}
}

func paramserverCmd() *cobra.Command {
	var natsURL, id string
	sc := paramserver.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "paramserver",
		Short: "Run a parameter server: owns key ranges of the jobs it is assigned",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger()
			defer log.Sync()
			nc, err := connectNATS(natsURL, "paramserver "+id, log)
			if err != nil {
				return err
			}
			defer nc.Close()
			host, _ := os.Hostname()
			sc.Logger = log
			a := paramserver.NewAgent(nc, member.Config{ID: id, Host: host, Logger: log}, sc)
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return a.Run(ctx, nc)
		},
	}
	cmd.Flags().StringVar(&natsURL, "nats", DefaultNATS, "NATS URL")
	cmd.Flags().StringVar(&id, "id", member.DefaultID("ps"), "member id")
	return cmd
}

func workerCmd() *cobra.Command {
	var natsURL, id string
	var threads int
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run a worker: trains its slice of each batch of the jobs it is assigned",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger()
			defer log.Sync()
			b, err := newBackend(threads)
			if err != nil {
				return err
			}
			defer b.Close()
			nc, err := connectNATS(natsURL, "worker "+id, log)
			if err != nil {
				return err
			}
			defer nc.Close()
			host, _ := os.Hostname()
			wc := worker.DefaultConfig()
			wc.Backend, wc.Logger = b, log
			a := worker.NewAgent(nc, member.Config{ID: id, Host: host, Threads: b.Threads(), Logger: log}, wc)
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return a.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&natsURL, "nats", DefaultNATS, "NATS URL")
	cmd.Flags().StringVar(&id, "id", member.DefaultID("worker"), "member id")
	cmd.Flags().IntVar(&threads, "threads", 0, "cores to use (0: all)")
	return cmd
}
