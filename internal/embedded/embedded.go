// Package embedded runs a whole maas cluster in one process on loopback: a
// NATS server with JetStream, a one-node Raft coordinator with its HTTP
// API, parameter servers and workers, each member on its own NATS
// connection, talking exactly as the processes of a cluster do. `maas
// local` runs it.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/coordinator"
	"github.com/maas-ml/maas/internal/member"
	"github.com/maas-ml/maas/internal/natsconn"
	"github.com/maas-ml/maas/internal/natsserver"
	"github.com/maas-ml/maas/paramserver"
	"github.com/maas-ml/maas/tensor"
	"github.com/maas-ml/maas/worker"
)

// Config is what to start.
type Config struct {
	// DataDir holds the NATS server's JetStream store (DataDir/nats) and
	// the coordinator's Raft data (DataDir/raft).
	DataDir string
	// NATSPort is the NATS client port (-1: any free port).
	NATSPort int
	// APIAddr and RaftAddr are the coordinator's HTTP API and Raft
	// addresses (host:port; port 0 for the API picks a free one).
	APIAddr, RaftAddr string
	// Workers and Servers are how many workers and parameter servers to
	// start; Threads the cores each worker computes with.
	Workers, Servers, Threads int
	// Device describes a worker's backend for `maas cluster status`
	// (default: its name and threads).
	Device func(tensor.Backend) string
	Logger *zap.Logger
}

// DefaultConfig is one worker and one parameter server on the usual
// local ports.
func DefaultConfig() Config {
	return Config{DataDir: filepath.Join("out", "local"), NATSPort: 4222, APIAddr: "127.0.0.1:7070", RaftAddr: "127.0.0.1:7000",
		Workers: 1, Servers: 1, Threads: 1}
}

// Validate reports a config that cannot start.
func (c Config) Validate() error {
	switch {
	case c.Workers <= 0:
		return fmt.Errorf("embedded: workers must be positive, got %d", c.Workers)
	case c.Servers <= 0:
		return fmt.Errorf("embedded: parameter servers must be positive, got %d", c.Servers)
	case c.Threads <= 0:
		return fmt.Errorf("embedded: threads per worker must be positive, got %d", c.Threads)
	case c.DataDir == "":
		return errors.New("embedded: no data directory")
	}
	return nil
}

// Cluster is a running embedded cluster.
type Cluster struct {
	// NATSURL is the NATS server's client URL; APIURL the coordinator's
	// HTTP API.
	NATSURL, APIURL string
	// Node is the coordinator.
	Node *coordinator.Node
	// WorkerConns are the workers' NATS connections (their traffic
	// figures).
	WorkerConns []*nats.Conn

	ns      *server.Server
	stopMem context.CancelFunc
	members chan struct{} // one value per member that has stopped
	started int
	closers []func()
}

// Start starts the cluster and returns once the coordinator leads. ctx
// bounds the start; the cluster runs until Close.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Device == nil {
		cfg.Device = func(b tensor.Backend) string { return fmt.Sprintf("cpu (%s, %d threads)", b.Name(), b.Threads()) }
	}
	log := cfg.Logger
	c := &Cluster{}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	nc := natsserver.DefaultConfig()
	nc.Port, nc.StoreDir = cfg.NATSPort, filepath.Join(cfg.DataDir, "nats")
	ns, err := natsserver.Start(nc)
	if err != nil {
		return nil, err
	}
	c.ns, c.NATSURL = ns, ns.ClientURL()
	connect := func(name string) (*nats.Conn, error) {
		conn, err := natsconn.Connect(c.NATSURL, natsconn.Options{Name: name, Logger: log})
		if err == nil {
			c.closers = append(c.closers, conn.Close)
		}
		return conn, err
	}

	cconn, err := connect("coordinator")
	if err != nil {
		return nil, err
	}
	cc := coordinator.DefaultConfig()
	cc.ID, cc.RaftAddr, cc.HTTPAddr, cc.DataDir, cc.Bootstrap, cc.Logger = "local", cfg.RaftAddr, cfg.APIAddr, filepath.Join(cfg.DataDir, "raft"), true, log
	node, err := coordinator.Open(cc, cconn)
	if err != nil {
		return nil, err
	}
	c.Node = node
	c.closers = append(c.closers, func() { node.Close() })
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err = node.WaitForLeader(wctx)
	cancel()
	if err != nil {
		return nil, err
	}
	c.APIURL = "http://" + node.HTTPAddr()

	members, stop := context.WithCancel(context.Background())
	c.stopMem, c.members = stop, make(chan struct{}, cfg.Workers+cfg.Servers)
	for i := range cfg.Servers {
		pconn, err := connect(fmt.Sprintf("parameter server %d", i+1))
		if err != nil {
			return nil, err
		}
		psCfg := paramserver.DefaultConfig()
		psCfg.Logger = log
		ps := paramserver.NewAgent(pconn, member.Config{ID: fmt.Sprintf("local-ps-%d", i+1), Host: "localhost", Logger: log}, psCfg)
		c.started++
		go func() { ps.Run(members, pconn); c.members <- struct{}{} }()
	}
	for i := range cfg.Workers {
		wconn, err := connect(fmt.Sprintf("worker %d", i+1))
		if err != nil {
			return nil, err
		}
		c.WorkerConns = append(c.WorkerConns, wconn)
		b := tensor.NewGo(cfg.Threads)
		c.closers = append(c.closers, b.Close)
		wc := worker.DefaultConfig()
		wc.Backend, wc.Logger = b, log
		w := worker.NewAgent(wconn, member.Config{ID: fmt.Sprintf("local-worker-%d", i+1), Host: "localhost", Threads: cfg.Threads,
			Device: cfg.Device(b), Logger: log}, wc)
		c.started++
		go func() { w.Run(members); c.members <- struct{}{} }()
	}
	ok = true
	return c, nil
}

// Close stops the members, then the coordinator and the NATS server, and
// waits for them.
func (c *Cluster) Close() {
	if c.stopMem != nil {
		c.stopMem()
		for range c.started {
			<-c.members
		}
		c.stopMem, c.started = nil, 0
	}
	for i := len(c.closers) - 1; i >= 0; i-- {
		c.closers[i]()
	}
	c.closers = nil
	if c.ns != nil {
		c.ns.Shutdown()
		c.ns.WaitForShutdown()
		c.ns = nil
	}
}
