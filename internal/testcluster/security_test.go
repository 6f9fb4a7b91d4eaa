package testcluster_test

import (
	"context"
	"errors"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/maas-ml/maas/coordinator"
	deploy "github.com/maas-ml/maas/deploy/cluster"
	"github.com/maas-ml/maas/deploy/cluster/clustertest"
	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/member"
	"github.com/maas-ml/maas/internal/natsconn"
	"github.com/maas-ml/maas/internal/testcluster"
	"github.com/maas-ml/maas/internal/wire"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/paramserver"
)

// The security tests of a secured cluster (TLS and the NATS users of
// `maas cluster init`): each refusal fails closed and leaves the state of
// the process refused unchanged. The test cluster's host runs two
// workers, h1-worker-1 and h1-worker-2.
const w1, w2 = "h1-worker-1", "h1-worker-2"

// connectAs connects to url as process id of the secrets, counting its
// permissions violations in m.
func connectAs(t *testing.T, s *clustertest.Secrets, url, id string, m *natsconn.Metrics) *nats.Conn {
	t.Helper()
	seedFile := s.Path(deploy.SeedFile(id))
	seed, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := natsconn.Connect(url, natsconn.Options{Name: id, Logger: zaptest.NewLogger(t).Named(id), Metrics: m,
		Credentials: []nats.Option{seed, nats.Secure(s.ClientTLS(t, false))}, Seed: seedFile, CA: s.CA()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// serveRange starts a parameter server as the cluster's server on url,
// serving job (one 10-float range, θ_0 = 0) to the workers members, in
// membership epoch 1; its metrics go to reg.
func serveRange(t *testing.T, s *clustertest.Secrets, url string, reg prometheus.Registerer, jobs map[string][]string) *paramserver.Server {
	t.Helper()
	cfg := paramserver.DefaultConfig()
	cfg.Logger, cfg.Registerer = zaptest.NewLogger(t).Named("ps"), reg
	nc := connectAs(t, s, url, s.ID(t, deploy.KindParamServer), natsconn.NewMetrics(nil))
	ps := paramserver.New(nc, cfg)
	for job, members := range jobs {
		a := paramserver.Assignment{Job: job, Ranges: []wire.Range{{Lo: 0, Hi: 10}}, Epoch: 1, Members: len(members), MemberIDs: members,
			Optimizer: nn.OptimizerSpec{Type: "sgd", LR: 1}, StepsPerEpoch: 10, TotalSteps: 10}
		if err := ps.Serve(a, make([]float32, 10), nil); err != nil {
			t.Fatal(err)
		}
	}
	// The tests' pushes do not wait for θ_0 as a worker does (which the
	// server publishes after subscribing): make sure the server has the
	// subscriptions before they come.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return ps
}

// unchanged checks that job's server is still at step 0 with θ_0 = 0
// and took no push.
func unchanged(t *testing.T, ps *paramserver.Server, job string, rejected int64) {
	t.Helper()
	st, ok := ps.Stats(job)
	if !ok || st.Step != 0 || st.Completed != 0 || st.Rejected != rejected {
		t.Errorf("job %s: %+v, want step 0, nothing completed, %d refused", job, st, rejected)
	}
	theta, err := ps.Stop(job)
	if err != nil || slices.ContainsFunc(theta, func(v float32) bool { return v != 0 }) {
		t.Errorf("job %s: θ %v (%v), want θ_0 unchanged", job, theta, err)
	}
}

// violations waits until m counted want violations of operation on
// subjects of kind.
func violations(t *testing.T, m *natsconn.Metrics, operation, kind string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for m.Violations(operation, kind) < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := m.Violations(operation, kind); got != want {
		t.Errorf("%s %s violations: %v, want %v", operation, kind, got, want)
	}
}

// TestSecurityWorkerPublishesParameters: a worker's credential publishing
// parameters or another worker's gradients is refused by NATS and counted
// in the worker's process; the parameter server never sees either, and
// its step and θ are unchanged.
func TestSecurityWorkerPublishesParameters(t *testing.T) {
	s := clustertest.NewFromYAML(t, clustertest.TwoWorkers)
	url := s.StartNATS(t)
	ps := serveRange(t, s, url, prometheus.NewRegistry(), map[string][]string{"j": {w1, w2}})
	listener := connectAs(t, s, url, w2, natsconn.NewMetrics(nil))
	params, err := listener.SubscribeSync(wire.ParamSubject("j"))
	if err != nil {
		t.Fatal(err)
	}
	listener.Flush()

	m := natsconn.NewMetrics(nil)
	worker := connectAs(t, s, url, w1, m)
	theta, _ := wire.Encode(&wire.ParamChunk{V: wire.Version, Job: "j", Epoch: 1, Step: 1, Data: wire.AppendFloats(nil, make([]float32, 4))})
	worker.Publish(wire.ParamSubject("j"), theta)
	grad, _ := wire.Encode(&wire.GradChunk{V: wire.Version, Job: "j", Epoch: 1, Rank: 1, N: 1, Data: wire.AppendFloats(nil, []float32{1, 1, 1, 1})})
	if _, err := worker.Request(wire.GradSubject("j", 0, w2), grad, 500*time.Millisecond); err == nil {
		t.Error("a push as another worker was answered")
	}
	worker.Flush()
	violations(t, m, "publish", "param", 1)
	violations(t, m, "publish", "grad", 1)
	if msg, err := params.NextMsg(200 * time.Millisecond); err == nil {
		t.Errorf("a forged parameter chunk reached the workers: %d bytes", len(msg.Data))
	}
	unchanged(t, ps, "j", 0)
}

// TestSecurityOtherJobsGradients: a worker pushing another job's
// gradients under its own id (which NATS lets it publish) is refused by
// the parameter server, which counts it as not_member; the other job's
// state is unchanged.
func TestSecurityOtherJobsGradients(t *testing.T) {
	s := clustertest.NewFromYAML(t, clustertest.TwoWorkers)
	url := s.StartNATS(t)
	reg := prometheus.NewRegistry()
	ps := serveRange(t, s, url, reg, map[string][]string{"mine": {w1}, "theirs": {w2}})
	worker := connectAs(t, s, url, w1, natsconn.NewMetrics(nil))
	grad, _ := wire.Encode(&wire.GradChunk{V: wire.Version, Job: "theirs", Epoch: 1, Rank: 0, N: 1, Data: wire.AppendFloats(nil, []float32{1, 1, 1, 1})})
	reply, err := worker.Request(wire.GradSubject("theirs", 0, w1), grad, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var ack wire.Ack
	if err := wire.Decode(reply.Data, &ack); err != nil {
		t.Fatal(err)
	}
	if ack.Accepted() || !strings.Contains(ack.Reason, "not a member") {
		t.Errorf("another job's push: %+v, want refused as not a member", ack)
	}
	if got := counter(t, reg, "maas_paramserver_refused_pushes_total", "reason", "not_member"); got != 1 {
		t.Errorf("maas_paramserver_refused_pushes_total{reason=not_member} = %v, want 1", got)
	}
	unchanged(t, ps, "theirs", 1)
	unchanged(t, ps, "mine", 0)
}

// counter is the value of counter vector name's counter whose label
// is value, in reg (0 when it has none).
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	v, _ := testcluster.MetricValue(reg, name, map[string]string{label: value})
	return v
}

// idle is a member that takes every assignment and works on nothing.
type idle struct{}

func (idle) Assign(context.Context, *wire.Assignment) error { return nil }
func (idle) Job() string                                    { return "" }

// TestSecurityMemberClaimsAnotherID: a process with w-1's NATS credential
// started as w-2 fails closed with ErrCredential naming w-2, and a
// heartbeat or registration that names w-2 on w-1's own subjects is
// dropped and counted by the coordinator: w-2, which has died, is not
// kept alive, and the coordinator's member table is unchanged.
func TestSecurityMemberClaimsAnotherID(t *testing.T) {
	s := clustertest.NewFromYAML(t, clustertest.TwoWorkers)
	url := s.StartNATS(t)
	reg := prometheus.NewRegistry()
	cfg := coordinator.DefaultConfig()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.RaftAddr = ln.Addr().String()
	ln.Close()
	cfg.ID, cfg.HTTPAddr, cfg.DataDir, cfg.Bootstrap = "c1", "127.0.0.1:0", filepath.Join(t.TempDir(), "c1"), true
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.MemberTimeout = 300*time.Millisecond, 300*time.Millisecond, time.Second
	cfg.Logger, cfg.Registerer = zaptest.NewLogger(t).Named("c1"), reg
	n, err := coordinator.Open(cfg, connectAs(t, s, url, s.ID(t, deploy.KindCoordinator), natsconn.NewMetrics(nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := n.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	members := func() map[string]coordinator.MemberInfo {
		var m map[string]coordinator.MemberInfo
		n.FSM().Read(func(st *coordinator.State) { m = maps.Clone(st.Members) })
		return m
	}

	// w-2 registers as itself, heartbeats, and dies.
	wctx, die := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() {
		ran <- member.Run(wctx, connectAs(t, s, url, w2, natsconn.NewMetrics(nil)), member.Config{ID: w2, Kind: wire.KindWorker, Host: "h1", HeartbeatEvery: 100 * time.Millisecond}, idle{})
	}()
	for _, ok := members()[w2]; !ok; _, ok = members()[w2] {
		if ctx.Err() != nil {
			t.Fatalf("w-2 did not register: %v", ctx.Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
	die()
	if err := <-ran; err != nil {
		t.Fatalf("w-2 as itself: %v", err)
	}
	before := members()

	// A process with w-1's credential started as w-2.
	start := time.Now()
	err = member.Run(ctx, connectAs(t, s, url, w1, natsconn.NewMetrics(nil)), member.Config{ID: w2, Kind: wire.KindWorker, Host: "impostor"}, idle{})
	if !errors.Is(err, member.ErrCredential) || !strings.Contains(err.Error(), "member "+w2) || !strings.Contains(err.Error(), "--nats-seed") {
		t.Errorf("w-1's credential as w-2: %v, want ErrCredential naming %s and --nats-seed", err, w2)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the impostor ran %v before failing", d)
	}

	// w-1 speaking for w-2 on its own subjects.
	nc := connectAs(t, s, url, w1, natsconn.NewMetrics(nil))
	reg2, _ := wire.Encode(&wire.Register{V: wire.Version, ID: w2, Kind: wire.KindWorker, Host: "impostor"})
	var ack wire.Ack
	if reply, err := nc.Request(wire.RegisterSubject(w1), reg2, 5*time.Second); err != nil {
		t.Errorf("registration naming w-2: %v", err)
	} else if wire.Decode(reply.Data, &ack) != nil || ack.Accepted() {
		t.Errorf("registration naming w-2 on w-1's subject: %+v, want refused", ack)
	}
	beat, _ := wire.Encode(&wire.Heartbeat{V: wire.Version, ID: w2, Kind: wire.KindWorker, Boot: "impostor"})
	c, err := api.NewClient("http://" + n.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc.Publish(wire.HeartbeatSubject(w1), beat)
		st, err := c.Cluster(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if i := slices.IndexFunc(st.Workers, func(m api.Member) bool { return m.ID == w2 }); i >= 0 && st.Workers[i].State == "dead" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("w-2 is kept alive by w-1's heartbeats: %+v", st.Workers)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := counter(t, reg, "maas_coordinator_forged_control_messages_total", "subject", "heartbeat"); got < 1 {
		t.Errorf("forged heartbeats counted: %v", got)
	}
	if got := counter(t, reg, "maas_coordinator_forged_control_messages_total", "subject", "register"); got != 1 {
		t.Errorf("forged registrations counted: %v, want 1", got)
	}
	if after := members(); !maps.Equal(before, after) {
		t.Errorf("the member table changed: %+v, was %+v", after, before)
	}
}
