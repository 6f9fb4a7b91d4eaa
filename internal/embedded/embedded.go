// Package embedded runs a whole maas cluster in one process on loopback: a
// NATS server with JetStream, Raft coordinators with their HTTP APIs,
// parameter servers and workers, each member on its own NATS connection,
// talking exactly as the processes of a cluster do. `maas local` runs it,
// and the cluster tests (internal/testcluster) drive it: members and
// coordinators are killed and started again, the NATS server restarted,
// and a member cut off from the network (Partition) and let back (Heal).
package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/coordinator"
	"github.com/maas-ml/maas/internal/member"
	"github.com/maas-ml/maas/internal/natsconn"
	"github.com/maas-ml/maas/internal/natsserver"
	"github.com/maas-ml/maas/internal/wire"
	"github.com/maas-ml/maas/paramserver"
	"github.com/maas-ml/maas/tensor"
	"github.com/maas-ml/maas/worker"
)

// Config is what to start.
type Config struct {
	// DataDir holds the NATS server's JetStream store (DataDir/nats) and
	// the coordinators' Raft data (DataDir/raft for the first,
	// DataDir/raft-ID for the others).
	DataDir string
	// NATSPort is the NATS client port (-1: any free port).
	NATSPort int
	// APIAddr and RaftAddr are the first coordinator's HTTP API and Raft
	// addresses (host:port; port 0 picks a free one, kept across that
	// coordinator's restarts). The others take free loopback ports.
	APIAddr, RaftAddr string
	// Coordinators is how many coordinators form the Raft cluster (0: one).
	Coordinators int
	// Workers and Servers are how many workers and parameter servers to
	// start; Threads the cores each worker computes with.
	Workers, Servers, Threads int
	// CoordinatorID, WorkerID and ServerID name the i-th (from 1)
	// coordinator, worker and parameter server (defaults: "local",
	// "local-2", …; "local-worker-i"; "local-ps-i").
	CoordinatorID, WorkerID, ServerID func(i int) string
	// Coordinator, when set, adjusts each coordinator's config (its
	// timeouts) before it opens.
	Coordinator func(c *coordinator.Config)
	// Partitionable routes every member's NATS connection through a relay
	// of its own, which Partition silences and Heal opens again. Off, the
	// members connect to the server directly.
	Partitionable bool
	// Device describes a worker's backend for `maas cluster status`
	// (default: its name and threads).
	Device func(tensor.Backend) string
	// Logger logs for every part, each named after its id (default: none).
	Logger *zap.Logger
}

// DefaultConfig is one coordinator, one worker and one parameter server
// on the usual local ports.
func DefaultConfig() Config {
	return Config{DataDir: filepath.Join("out", "local"), NATSPort: 4222, APIAddr: "127.0.0.1:7070", RaftAddr: "127.0.0.1:7000",
		Coordinators: 1, Workers: 1, Servers: 1, Threads: 1}
}

// Validate reports a config that cannot start.
func (c Config) Validate() error {
	switch {
	case c.Coordinators < 0:
		return fmt.Errorf("embedded: coordinators must not be negative, got %d", c.Coordinators)
	case c.Workers < 0:
		return fmt.Errorf("embedded: workers must not be negative, got %d", c.Workers)
	case c.Servers < 0:
		return fmt.Errorf("embedded: parameter servers must not be negative, got %d", c.Servers)
	case c.Threads <= 0:
		return fmt.Errorf("embedded: threads per worker must be positive, got %d", c.Threads)
	case c.DataDir == "":
		return errors.New("embedded: no data directory")
	}
	return nil
}

func (c *Config) defaults() {
	if c.Coordinators == 0 {
		c.Coordinators = 1
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Device == nil {
		c.Device = func(b tensor.Backend) string { return fmt.Sprintf("cpu (%s, %d threads)", b.Name(), b.Threads()) }
	}
	if c.CoordinatorID == nil {
		c.CoordinatorID = func(i int) string {
			if i == 1 {
				return "local"
			}
			return fmt.Sprintf("local-%d", i)
		}
	}
	if c.WorkerID == nil {
		c.WorkerID = func(i int) string { return fmt.Sprintf("local-worker-%d", i) }
	}
	if c.ServerID == nil {
		c.ServerID = func(i int) string { return fmt.Sprintf("local-ps-%d", i) }
	}
}

// Cluster is a running embedded cluster. Its methods may be called from
// any goroutine.
type Cluster struct {
	// NATSURL is the NATS server's client URL (the same across
	// RestartNATS); APIURL the first coordinator's HTTP API.
	NATSURL, APIURL string

	cfg Config
	log *zap.Logger

	mu      sync.Mutex // guards everything below
	ns      *server.Server
	natsCfg natsserver.Config
	coords  []*coord
	members map[string]*proc
	started []string // member ids in start order
}

// coord is one coordinator: its config (with the addresses it took, for a
// restart) and its node, nil while it is down.
type coord struct {
	cfg  coordinator.Config
	node *coordinator.Node
	conn *nats.Conn
}

// proc is one running member.
type proc struct {
	kind    string // wire.KindWorker or wire.KindParamServer
	cancel  context.CancelFunc
	done    chan struct{} // closed when its Run returns
	conn    *nats.Conn
	relay   *relay // nil unless Partitionable
	backend *tensor.GoBackend
}

// Start starts the cluster and returns once a coordinator leads and every
// coordinator has joined. ctx bounds the start; the cluster runs until
// Close.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	c := &Cluster{cfg: cfg, log: cfg.Logger, members: map[string]*proc{}}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	c.natsCfg = natsserver.DefaultConfig()
	c.natsCfg.Port, c.natsCfg.StoreDir = cfg.NATSPort, filepath.Join(cfg.DataDir, "nats")
	ns, err := natsserver.Start(c.natsCfg)
	if err != nil {
		return nil, err
	}
	c.ns, c.NATSURL = ns, ns.ClientURL()
	c.natsCfg.Port = ns.Addr().(*net.TCPAddr).Port
	if err := c.startCoordinators(ctx); err != nil {
		return nil, err
	}
	for i := range cfg.Servers {
		if err := c.StartServer(cfg.ServerID(i + 1)); err != nil {
			return nil, err
		}
	}
	for i := range cfg.Workers {
		if err := c.StartWorker(cfg.WorkerID(i + 1)); err != nil {
			return nil, err
		}
	}
	ok = true
	return c, nil
}

// startCoordinators opens every coordinator: the first bootstraps the
// Raft cluster, the others join it through the leader.
func (c *Cluster) startCoordinators(ctx context.Context) error {
	for i := range c.cfg.Coordinators {
		cc := coordinator.DefaultConfig()
		cc.ID = c.cfg.CoordinatorID(i + 1)
		cc.RaftAddr, cc.HTTPAddr, cc.DataDir = "127.0.0.1:0", "127.0.0.1:0", filepath.Join(c.cfg.DataDir, "raft-"+cc.ID)
		if i == 0 {
			cc.RaftAddr, cc.HTTPAddr, cc.DataDir = c.cfg.RaftAddr, c.cfg.APIAddr, filepath.Join(c.cfg.DataDir, "raft")
		}
		cc.Bootstrap = i == 0
		if c.cfg.Coordinator != nil {
			c.cfg.Coordinator(&cc)
		}
		// Raft's address is part of the cluster's configuration on disk:
		// a free port is chosen once and kept for restarts.
		addr, err := pinPort(cc.RaftAddr)
		if err != nil {
			return fmt.Errorf("embedded: coordinator %s: raft address %s: %w", cc.ID, cc.RaftAddr, err)
		}
		cc.RaftAddr = addr
		co := &coord{cfg: cc}
		c.mu.Lock()
		c.coords = append(c.coords, co)
		c.mu.Unlock()
		if err := c.open(co); err != nil {
			return err
		}
		if i == 0 {
			c.APIURL = "http://" + co.node.HTTPAddr()
			wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			err := co.node.WaitForLeader(wctx)
			cancel()
			if err != nil {
				return fmt.Errorf("embedded: coordinator %s did not become leader: %w", cc.ID, err)
			}
			continue
		}
		_, leader := c.Leader()
		if leader == nil {
			return fmt.Errorf("embedded: no leader for coordinator %s to join", cc.ID)
		}
		if err := leader.Join(ctx, cc.ID, cc.RaftAddr, co.node.HTTPAddr()); err != nil {
			return fmt.Errorf("embedded: coordinator %s joining: %w", cc.ID, err)
		}
	}
	return nil
}

// pinPort turns host:0 into host:P for a port P free now.
func pinPort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != "0" {
		return addr, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// open opens co's node on its own NATS connection; its HTTP address is
// kept for a restart.
func (c *Cluster) open(co *coord) error {
	conn, err := c.connect(co.cfg.ID, c.NATSURL)
	if err != nil {
		return err
	}
	cfg := co.cfg
	cfg.Logger = c.log.Named(cfg.ID)
	n, err := coordinator.Open(cfg, conn)
	if err != nil {
		conn.Close()
		return fmt.Errorf("embedded: coordinator %s: %w", cfg.ID, err)
	}
	c.mu.Lock()
	co.node, co.conn, co.cfg.HTTPAddr = n, conn, n.HTTPAddr()
	c.mu.Unlock()
	return nil
}

func (c *Cluster) connect(name, url string) (*nats.Conn, error) {
	return natsconn.Connect(url, natsconn.Options{Name: name, Logger: c.log.Named(name)})
}

// Leader returns the leading coordinator and its id, or nil when none
// leads (or the leader is down).
func (c *Cluster) Leader() (string, *coordinator.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, co := range c.coords {
		if co.node != nil && co.node.IsLeader() {
			return co.cfg.ID, co.node
		}
	}
	return "", nil
}

// Coordinators returns the running coordinators' ids and their API URLs,
// in start order.
func (c *Cluster) Coordinators() (ids, urls []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, co := range c.coords {
		if co.node != nil {
			ids, urls = append(ids, co.cfg.ID), append(urls, "http://"+co.node.HTTPAddr())
		}
	}
	return ids, urls
}

// NATS returns the NATS server (a new one after RestartNATS).
func (c *Cluster) NATS() *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ns
}

// WorkerConns returns the running workers' NATS connections (their
// traffic figures), in start order.
func (c *Cluster) WorkerConns() []*nats.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*nats.Conn
	for _, id := range c.started {
		if p := c.members[id]; p != nil && p.kind == wire.KindWorker {
			out = append(out, p.conn)
		}
	}
	return out
}

// StartServer starts a parameter server member under id.
func (c *Cluster) StartServer(id string) error {
	return c.startMember(id, wire.KindParamServer)
}

// StartWorker starts a worker member under id, computing with its own
// backend of Config.Threads cores.
func (c *Cluster) StartWorker(id string) error {
	return c.startMember(id, wire.KindWorker)
}

func (c *Cluster) startMember(id, kind string) error {
	c.mu.Lock()
	_, running := c.members[id]
	c.mu.Unlock()
	if running {
		return fmt.Errorf("embedded: member %s is already running", id)
	}
	p := &proc{kind: kind, done: make(chan struct{})}
	url := c.NATSURL
	if c.cfg.Partitionable {
		r, err := newRelay(c.NATS().Addr().String())
		if err != nil {
			return fmt.Errorf("embedded: member %s: %w", id, err)
		}
		p.relay, url = r, r.url()
	}
	conn, err := c.connect(id, url)
	if err != nil {
		p.release()
		return fmt.Errorf("embedded: member %s: %w", id, err)
	}
	p.conn = conn
	log := c.log.Named(id)
	mc := member.Config{ID: id, Host: "localhost", Logger: log}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	var run func()
	switch kind {
	case wire.KindWorker:
		p.backend = tensor.NewGo(c.cfg.Threads)
		wc := worker.DefaultConfig()
		wc.Backend, wc.Logger = p.backend, log
		mc.Threads, mc.Device = c.cfg.Threads, c.cfg.Device(p.backend)
		a := worker.NewAgent(conn, mc, wc)
		run = func() { _ = a.Run(ctx) }
	default:
		sc := paramserver.DefaultConfig()
		sc.Logger = log
		a := paramserver.NewAgent(conn, mc, sc)
		run = func() { _ = a.Run(ctx, conn) }
	}
	c.mu.Lock()
	c.members[id] = p
	c.started = append(slices.DeleteFunc(c.started, func(s string) bool { return s == id }), id)
	c.mu.Unlock()
	go func() {
		defer close(p.done)
		run()
	}()
	return nil
}

// stop ends a member as if its process died: its work stops, then its
// connection closes.
func (p *proc) stop() {
	p.cancel()
	<-p.done
	p.release()
}

func (p *proc) release() {
	if p.conn != nil {
		p.conn.Close()
	}
	if p.relay != nil {
		p.relay.close()
	}
	if p.backend != nil {
		p.backend.Close()
	}
}

// Kill stops a member (its heartbeats and work end and its connection
// closes, as when its process dies) or a coordinator (Raft shut down; its
// data stays on disk for Restart).
func (c *Cluster) Kill(id string) error {
	c.mu.Lock()
	p := c.members[id]
	delete(c.members, id)
	var node *coordinator.Node
	var conn *nats.Conn
	for _, co := range c.coords {
		if co.cfg.ID == id && co.node != nil {
			node, conn, co.node, co.conn = co.node, co.conn, nil, nil
		}
	}
	c.mu.Unlock()
	switch {
	case p != nil:
		p.stop()
	case node != nil:
		err := node.Close()
		conn.Close()
		return err
	default:
		return fmt.Errorf("embedded: no running member or coordinator %q", id)
	}
	return nil
}

// Restart starts a killed coordinator again from its data directory, on
// its old addresses.
func (c *Cluster) Restart(id string) error {
	c.mu.Lock()
	var co *coord
	for _, x := range c.coords {
		if x.cfg.ID == id {
			co = x
		}
	}
	c.mu.Unlock()
	switch {
	case co == nil:
		return fmt.Errorf("embedded: no coordinator %q", id)
	case co.node != nil:
		return fmt.Errorf("embedded: coordinator %s is running", id)
	}
	co.cfg.Bootstrap = false
	return c.open(co)
}

// RestartNATS shuts the NATS server down, waits down, and starts it again
// on the same port with the same JetStream store: every connection loses
// the server for that long and then reconnects.
func (c *Cluster) RestartNATS(down time.Duration) error {
	c.mu.Lock()
	ns := c.ns
	c.mu.Unlock()
	ns.Shutdown()
	ns.WaitForShutdown()
	time.Sleep(down)
	ns, err := natsserver.Start(c.natsCfg)
	if err != nil {
		return fmt.Errorf("embedded: restarting NATS: %w", err)
	}
	c.mu.Lock()
	c.ns = ns
	c.mu.Unlock()
	return nil
}

// Partition cuts member id off the network: its NATS traffic is held both
// ways until Heal. It needs Config.Partitionable.
func (c *Cluster) Partition(id string) error {
	r, err := c.relayOf(id)
	if err == nil {
		r.partition()
	}
	return err
}

// Heal lets member id's traffic through again.
func (c *Cluster) Heal(id string) error {
	r, err := c.relayOf(id)
	if err == nil {
		r.heal()
	}
	return err
}

func (c *Cluster) relayOf(id string) (*relay, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.members[id]
	switch {
	case p == nil:
		return nil, fmt.Errorf("embedded: no running member %q", id)
	case p.relay == nil:
		return nil, errors.New("embedded: members are not partitionable (Config.Partitionable)")
	}
	return p.relay, nil
}

// Close stops the members, then the coordinators and the NATS server, and
// waits for them.
func (c *Cluster) Close() {
	c.mu.Lock()
	members, coords := c.members, c.coords
	c.members, c.coords, c.started = map[string]*proc{}, nil, nil
	ns := c.ns
	c.ns = nil
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range members {
		p.cancel()
		wg.Add(1)
		go func() { defer wg.Done(); p.stop() }()
	}
	wg.Wait()
	for i := len(coords) - 1; i >= 0; i-- {
		if co := coords[i]; co.node != nil {
			_ = co.node.Close()
			co.conn.Close()
		}
	}
	if ns != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
}
