package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/coordinator"
	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/member"
	"github.com/maas-ml/maas/internal/natsserver"
	"github.com/maas-ml/maas/paramserver"
	"github.com/maas-ml/maas/tensor"
	"github.com/maas-ml/maas/worker"
)

// Options size a test cluster.
type Options struct {
	Coordinators, Servers, Workers int
	// Threads per worker (default 1).
	Threads int
	// Coordinator adjusts every coordinator's config (timeouts).
	Coordinator func(c *coordinator.Config)
}

// Cluster is every role of maas in one test process: an embedded NATS
// server, N coordinators on real Raft (TCP on loopback, bolt on disk), P
// parameter servers and K workers, each with its own NATS connection.
type Cluster struct {
	t    testing.TB
	NATS *server.Server

	mu      sync.Mutex // guards nodes and members
	nodes   map[string]*coordinator.Node
	cfgs    map[string]coordinator.Config
	order   []string
	members map[string]context.CancelFunc
	backend *tensor.GoBackend
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Start starts a cluster and waits for its leader and every member's
// registration; everything stops when the test ends.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.Threads == 0 {
		o.Threads = 1
	}
	c := &Cluster{t: t, NATS: StartNATS(t), nodes: map[string]*coordinator.Node{}, cfgs: map[string]coordinator.Config{},
		members: map[string]context.CancelFunc{}, backend: tensor.NewGo(o.Threads)}
	t.Cleanup(c.stop)
	dir := t.TempDir()
	for i := range o.Coordinators {
		cfg := coordinator.DefaultConfig()
		cfg.ID = fmt.Sprintf("c%d", i+1)
		cfg.RaftAddr, cfg.HTTPAddr, cfg.DataDir = freeAddr(t), freeAddr(t), filepath.Join(dir, cfg.ID)
		cfg.Bootstrap = i == 0
		cfg.HeartbeatTimeout, cfg.ElectionTimeout = 300*time.Millisecond, 300*time.Millisecond
		if o.Coordinator != nil {
			o.Coordinator(&cfg)
		}
		c.cfgs[cfg.ID] = cfg
		c.order = append(c.order, cfg.ID)
		c.startNode(cfg.ID)
		if i == 0 {
			c.waitLeader()
			continue
		}
		if err := c.Leader().Join(t.Context(), cfg.ID, cfg.RaftAddr, c.nodes[cfg.ID].HTTPAddr()); err != nil {
			t.Fatal(err)
		}
	}
	for i := range o.Servers {
		c.StartServer(fmt.Sprintf("ps-%d", i+1))
	}
	for i := range o.Workers {
		c.StartWorker(fmt.Sprintf("w-%d", i+1))
	}
	c.waitMembers(o.Servers, o.Workers)
	return c
}

// testLogger is a development logger named for a process when
// MAAS_TEST_LOG is set (to read what a failing cluster test did), else
// none.
func testLogger(name string) *zap.Logger {
	if os.Getenv("MAAS_TEST_LOG") == "" {
		return zap.NewNop()
	}
	l, err := zap.NewDevelopment()
	if err != nil {
		return zap.NewNop()
	}
	return l.Named(name)
}

func (c *Cluster) startNode(id string) {
	cfg := c.cfgs[id]
	cfg.Logger = testLogger(id)
	n, err := coordinator.Open(cfg, Connect(c.t, c.NATS))
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.nodes[id] = n
	c.mu.Unlock()
}

func (c *Cluster) waitLeader() {
	c.t.Helper()
	c.WaitFor("a coordinator leader", 10*time.Second, func() bool {
		l := c.Leader()
		if l == nil {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		return l.WaitForLeader(ctx) == nil
	})
}

// WaitFor polls cond until it holds or d passes (then the test fails).
func (c *Cluster) WaitFor(what string, d time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Leader returns the leading coordinator, or nil.
func (c *Cluster) Leader() *coordinator.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range c.order {
		if n := c.nodes[id]; n != nil && n.IsLeader() {
			return n
		}
	}
	return nil
}

// API returns a client of the cluster's API through any live coordinator
// (followers redirect to the leader).
func (c *Cluster) API() *api.Client {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range c.order {
		if n := c.nodes[id]; n != nil {
			cl, err := api.NewClient("http://" + n.HTTPAddr())
			if err != nil {
				c.t.Fatal(err)
			}
			return cl
		}
	}
	c.t.Fatal("no coordinator is running")
	return nil
}

// StartServer starts a parameter server member.
func (c *Cluster) StartServer(id string) {
	ctx, cancel := context.WithCancel(context.Background())
	nc := Connect(c.t, c.NATS)
	pc := paramserver.DefaultConfig()
	pc.Logger = testLogger(id)
	a := paramserver.NewAgent(nc, member.Config{ID: id, Host: "test", Logger: pc.Logger}, pc)
	c.mu.Lock()
	c.members[id] = cancel
	c.mu.Unlock()
	go a.Run(ctx, nc)
}

// StartWorker starts a worker member.
func (c *Cluster) StartWorker(id string) {
	ctx, cancel := context.WithCancel(context.Background())
	wc := worker.DefaultConfig()
	wc.Backend, wc.Logger = c.backend, testLogger(id)
	a := worker.NewAgent(Connect(c.t, c.NATS), member.Config{ID: id, Host: "test", Threads: c.backend.Threads(), Logger: wc.Logger}, wc)
	c.mu.Lock()
	c.members[id] = cancel
	c.mu.Unlock()
	go a.Run(ctx)
}

func (c *Cluster) waitMembers(servers, workers int) {
	c.t.Helper()
	cl := c.API()
	c.WaitFor("every member to register", 20*time.Second, func() bool {
		cs, err := cl.Cluster(context.Background())
		return err == nil && len(cs.Servers) == servers && len(cs.Workers) == workers
	})
}

// Kill stops a member (its heartbeats and work end, as if its process
// died) or a coordinator (Raft shut down; its data stays on disk).
func (c *Cluster) Kill(id string) {
	c.t.Helper()
	c.mu.Lock()
	cancel, isMember := c.members[id]
	n, isNode := c.nodes[id]
	delete(c.members, id)
	if isNode {
		c.nodes[id] = nil
	}
	c.mu.Unlock()
	switch {
	case isMember:
		cancel()
	case isNode && n != nil:
		n.Close()
	default:
		c.t.Fatalf("Kill(%q): no such running member or coordinator", id)
	}
}

// Restart starts a killed coordinator again from its data directory.
func (c *Cluster) Restart(id string) {
	c.t.Helper()
	if _, ok := c.cfgs[id]; !ok {
		c.t.Fatalf("Restart(%q): not a coordinator", id)
	}
	c.startNode(id)
}

// Submit submits a job spec and returns its id, retrying while the
// cluster has no leader (an election in progress).
func (c *Cluster) Submit(spec string, workers, servers int) string {
	c.t.Helper()
	var id string
	c.WaitFor("the job to be accepted", 10*time.Second, func() bool {
		r, err := c.API().Submit(context.Background(), api.SubmitRequest{Spec: spec, Workers: workers, ParameterServers: servers})
		if err != nil && !errors.Is(err, api.ErrNoLeader) {
			c.t.Fatal(err)
		}
		id = r.ID
		return err == nil
	})
	return id
}

// Job returns a job's status, retrying through an election.
func (c *Cluster) Job(id string) api.JobStatus {
	c.t.Helper()
	var js api.JobStatus
	c.WaitFor("the job's status", 10*time.Second, func() bool {
		var ok bool
		js, ok = c.job(id)
		return ok
	})
	return js
}

// job returns a job's status, or false while there is no leader.
func (c *Cluster) job(id string) (api.JobStatus, bool) {
	c.t.Helper()
	js, err := c.API().Job(context.Background(), id)
	if errors.Is(err, api.ErrNoLeader) || errors.Is(err, api.ErrUnreachable) {
		return js, false
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return js, true
}

// WaitForStep waits until the job has finished step (or ended).
func (c *Cluster) WaitForStep(id string, step int64, d time.Duration) api.JobStatus {
	c.t.Helper()
	var js api.JobStatus
	defer c.logOnFailure(id)
	c.WaitFor(fmt.Sprintf("job %s to reach step %d", id, step), d, func() bool {
		var ok bool
		js, ok = c.job(id)
		return ok && (js.Step >= step || api.Terminal(js.State))
	})
	return js
}

// WaitJob waits until the job ends and returns its final status.
func (c *Cluster) WaitJob(id string, d time.Duration) api.JobStatus {
	c.t.Helper()
	var js api.JobStatus
	defer c.logOnFailure(id)
	c.WaitFor(fmt.Sprintf("job %s to end", id), d, func() bool {
		var ok bool
		js, ok = c.job(id)
		return ok && api.Terminal(js.State)
	})
	return js
}

// logOnFailure writes the job's log and status into the test output when
// the test has failed (a wait timed out): what the coordinator saw is the
// first thing to read.
func (c *Cluster) logOnFailure(id string) {
	if !c.t.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cl := c.API()
	if page, err := cl.Logs(ctx, id, 0); err == nil {
		for _, e := range page.Entries {
			c.t.Logf("job log %s: %s", e.Time.Format("15:04:05.000"), e.Message)
		}
	}
	if js, err := cl.Job(ctx, id); err == nil {
		c.t.Logf("job %s: %s step %d epoch %d members %v servers %v: %q", id, js.State, js.Step, js.Epoch, js.Members, js.Servers, js.Reason)
	}
}

func (c *Cluster) stop() {
	c.mu.Lock()
	members, nodes := c.members, c.nodes
	c.members, c.nodes = map[string]context.CancelFunc{}, map[string]*coordinator.Node{}
	c.mu.Unlock()
	for _, cancel := range members {
		cancel()
	}
	for _, n := range nodes {
		if n != nil {
			n.Close()
		}
	}
	c.backend.Close()
}

// RestartNATS shuts the NATS server down, waits down, and starts it again
// on the same port with the same JetStream store: every connection loses
// the server for that long and then reconnects.
func (c *Cluster) RestartNATS(down time.Duration) {
	c.t.Helper()
	port := c.NATS.Addr().(*net.TCPAddr).Port
	store := c.NATS.JetStreamConfig().StoreDir
	c.NATS.Shutdown()
	c.NATS.WaitForShutdown()
	time.Sleep(down)
	cfg := natsserver.DefaultConfig()
	cfg.Port, cfg.StoreDir = port, store
	s, err := natsserver.Start(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	c.NATS = s
}
