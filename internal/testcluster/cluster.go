package testcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/maas-ml/maas/coordinator"
	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/embedded"
)

// Options size a test cluster.
type Options struct {
	Coordinators, Servers, Workers int
	// Threads per worker (default 1).
	Threads int
	// Coordinator adjusts every coordinator's config (timeouts).
	Coordinator func(c *coordinator.Config)
}

// Cluster is every role of maas in one test process, started through
// package embedded as `maas local` starts it: a NATS server, N
// coordinators on real Raft (TCP on loopback, bolt on disk), P parameter
// servers and K workers, each member on its own NATS connection through
// a relay that Partition can silence. Coordinators are c1…cN, parameter
// servers ps-1…, workers w-1….
type Cluster struct {
	*embedded.Cluster
	t testing.TB
}

// Start starts a cluster and waits for its leader and every member's
// registration; everything stops when the test ends.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.Threads == 0 {
		o.Threads = 1
	}
	if o.Coordinators == 0 {
		o.Coordinators = 1
	}
	cfg := embedded.Config{DataDir: t.TempDir(), NATSPort: -1, APIAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0",
		Coordinators: o.Coordinators, Servers: o.Servers, Workers: o.Workers, Threads: o.Threads, Partitionable: true,
		CoordinatorID: func(i int) string { return fmt.Sprintf("c%d", i) },
		WorkerID:      func(i int) string { return fmt.Sprintf("w-%d", i) },
		ServerID:      func(i int) string { return fmt.Sprintf("ps-%d", i) },
		Coordinator: func(cc *coordinator.Config) {
			cc.HeartbeatTimeout, cc.ElectionTimeout = 300*time.Millisecond, 300*time.Millisecond
			if o.Coordinator != nil {
				o.Coordinator(cc)
			}
		},
		Logger: testLogger()}
	ec, err := embedded.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Cluster: ec, t: t}
	t.Cleanup(ec.Close)
	c.waitMembers(o.Servers, o.Workers)
	return c
}

// testLogger is a development logger when MAAS_TEST_LOG is set (to read
// what a failing cluster test did; each part names itself), else none.
func testLogger() *zap.Logger {
	if os.Getenv("MAAS_TEST_LOG") == "" {
		return zap.NewNop()
	}
	l, err := zap.NewDevelopment()
	if err != nil {
		return zap.NewNop()
	}
	return l
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
	_, n := c.Cluster.Leader()
	return n
}

// LeaderID returns the leading coordinator's id, or "".
func (c *Cluster) LeaderID() string {
	id, _ := c.Cluster.Leader()
	return id
}

// API returns a client of the cluster's API through the first live
// coordinator (followers redirect to the leader).
func (c *Cluster) API() *api.Client {
	c.t.Helper()
	_, urls := c.Coordinators()
	if len(urls) == 0 {
		c.t.Fatal("no coordinator is running")
	}
	cl, err := api.NewClient(urls[0])
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// StartServer starts a parameter server member.
func (c *Cluster) StartServer(id string) {
	c.t.Helper()
	if err := c.Cluster.StartServer(id); err != nil {
		c.t.Fatal(err)
	}
}

// StartWorker starts a worker member.
func (c *Cluster) StartWorker(id string) {
	c.t.Helper()
	if err := c.Cluster.StartWorker(id); err != nil {
		c.t.Fatal(err)
	}
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
	if err := c.Cluster.Kill(id); err != nil {
		c.t.Fatal(err)
	}
}

// Restart starts a killed coordinator again from its data directory.
func (c *Cluster) Restart(id string) {
	c.t.Helper()
	if err := c.Cluster.Restart(id); err != nil {
		c.t.Fatal(err)
	}
}

// RestartNATS restarts the NATS server after down (see
// embedded.Cluster.RestartNATS).
func (c *Cluster) RestartNATS(down time.Duration) {
	c.t.Helper()
	if err := c.Cluster.RestartNATS(down); err != nil {
		c.t.Fatal(err)
	}
}

// Partition cuts a member off the network: its NATS traffic is held both
// ways until Heal.
func (c *Cluster) Partition(id string) {
	c.t.Helper()
	if err := c.Cluster.Partition(id); err != nil {
		c.t.Fatal(err)
	}
}

// Heal lets a partitioned member's traffic through again.
func (c *Cluster) Heal(id string) {
	c.t.Helper()
	if err := c.Cluster.Heal(id); err != nil {
		c.t.Fatal(err)
	}
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
