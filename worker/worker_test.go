package worker_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/natsserver"
	"github.com/maas-ml/maas/internal/testcluster"
	"github.com/maas-ml/maas/internal/train"
	"github.com/maas-ml/maas/internal/wire"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/tensor"
	"github.com/maas-ml/maas/worker"
)

// fakeServer is a labelled stand-in for one parameter server owning the
// whole of θ: it takes every push of the one worker, and when a step's
// chunks are in, applies plain SGD (θ ← θ − lr·g) and publishes θ_{t+1}
// (unless quiet) and answers pulls. Its hooks make it drop pushes, refuse
// them, or hold θ back.
type fakeServer struct {
	t     *testing.T
	nc    *nats.Conn
	job   string
	lr    float32
	refs  []wire.Range // the chunks, in order
	quiet bool         // publish nothing: the worker must pull

	// dropFirst drops (never answers) the first push of each chunk.
	dropFirst bool
	// refuse answers every push with this code.
	refuse wire.AckCode
	// holdFrom: θ of this step and later is never given out.
	holdFrom int64
	// gap spaces the fan-out's chunks (a slow, busy link).
	gap time.Duration

	pushes atomic.Int32
	pulls  atomic.Int32

	mu    sync.Mutex // guards what follows
	theta map[int64][]float32
	grads map[int64][]float32 // gradient received for step t
	have  map[int64]map[int]bool
	seen  map[[2]int64]bool // (step, chunk) pushed once already
}

func newFakeServer(t *testing.T, nc *nats.Conn, job string, theta0 []float32, chunk int, lr float32) *fakeServer {
	s := &fakeServer{t: t, nc: nc, job: job, lr: lr, holdFrom: -1,
		theta: map[int64][]float32{0: slices.Clone(theta0)}, grads: map[int64][]float32{},
		have: map[int64]map[int]bool{}, seen: map[[2]int64]bool{}}
	s.refs = wire.Chunks(wire.Range{Lo: 0, Hi: len(theta0)}, chunk)
	sub, err := nc.Subscribe(wire.GradSubjects(job, 0), s.onPush)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	sub, err = nc.Subscribe(wire.PullSubject(job, 0), s.onPull)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	return s
}

func (s *fakeServer) ack(m *nats.Msg, code wire.AckCode) {
	b, err := wire.Encode(&wire.Ack{V: wire.Version, Code: code, Reason: string(code)})
	if err == nil {
		m.Respond(b)
	}
}

func (s *fakeServer) onPush(m *nats.Msg) {
	s.pushes.Add(1)
	var g wire.GradChunk
	if err := wire.Decode(m.Data, &g); err != nil {
		s.ack(m, wire.AckRejected)
		return
	}
	if s.refuse != "" {
		s.ack(m, s.refuse)
		return
	}
	s.mu.Lock()
	key := [2]int64{g.Step, int64(g.Chunk)}
	if s.dropFirst && !s.seen[key] {
		s.seen[key] = true
		s.mu.Unlock()
		return // no answer: the worker must retry
	}
	r := s.refs[g.Chunk]
	if s.grads[g.Step] == nil {
		s.grads[g.Step] = make([]float32, s.refs[len(s.refs)-1].Hi)
		s.have[g.Step] = map[int]bool{}
	}
	if err := wire.DecodeFloats(s.grads[g.Step][r.Lo:r.Hi], g.Data, g.Enc); err != nil {
		s.mu.Unlock()
		s.ack(m, wire.AckRejected)
		return
	}
	s.have[g.Step][g.Chunk] = true
	complete := len(s.have[g.Step]) == len(s.refs) && s.theta[g.Step+1] == nil
	if complete {
		next := slices.Clone(s.theta[g.Step])
		for i, v := range s.grads[g.Step] {
			next[i] -= s.lr * v
		}
		s.theta[g.Step+1] = next
	}
	s.mu.Unlock()
	s.ack(m, wire.AckOK)
	if complete && !s.quiet && (s.holdFrom < 0 || g.Step+1 < s.holdFrom) {
		go func() {
			for c := range s.refs {
				if c > 0 {
					time.Sleep(s.gap)
				}
				s.nc.Publish(wire.ParamSubject(s.job), s.chunk(g.Step+1, c))
			}
		}()
	}
}

// chunk encodes chunk c of θ_step.
func (s *fakeServer) chunk(step int64, c int) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.refs[c]
	b, err := wire.Encode(&wire.ParamChunk{V: wire.Version, Job: s.job, Epoch: 1, Step: step, Server: 0, Chunk: c, Offset: r.Lo,
		Data: wire.AppendFloats(nil, s.theta[step][r.Lo:r.Hi])})
	if err != nil {
		s.t.Error(err)
	}
	return b
}

func (s *fakeServer) onPull(m *nats.Msg) {
	s.pulls.Add(1)
	var p wire.PullRequest
	if err := wire.Decode(m.Data, &p); err != nil {
		return
	}
	s.mu.Lock()
	ready := s.theta[p.Step] != nil && (s.holdFrom < 0 || p.Step < s.holdFrom)
	s.mu.Unlock()
	if !ready {
		b, _ := wire.Encode(&wire.Ack{V: wire.Version, Code: wire.AckFuture, Reason: "not yet"})
		m.RespondMsg(&nats.Msg{Data: b, Header: nats.Header{wire.HeaderAck: []string{string(wire.AckFuture)}}})
		return
	}
	m.Respond(s.chunk(p.Step, p.Chunk))
}

// setup starts an embedded NATS server and returns a connection to it, a
// tiny job spec (a dense layer over 1x28x28 images, SGD, batch 8, file
// order), its data, and the seeded θ_0.
func setup(t *testing.T) (*nats.Conn, *jobspec.Spec, train.Source, []float32) {
	t.Helper()
	c := natsserver.DefaultConfig()
	c.Port, c.StoreDir = -1, t.TempDir()
	srv, err := natsserver.Start(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	spec, err := jobspec.Parse([]byte(`name: tiny
model:
  input: [1, 28, 28]
  layers: [{type: flatten}, {type: dense, units: 10}]
loss: softmax_cross_entropy
optimizer: {type: sgd, lr: 0.5}
dataset: {kind: mnist}
batch_size: 8
epochs: 1
seed: 3
shuffle: false
`))
	if err != nil {
		t.Fatal(err)
	}
	data := train.Images{D: dataset.Synthetic("d", 64, 1, 28, 28, 10, 5), Norm: spec.Normalization()}
	m, err := nn.Build(spec.Model, tensor.Reference)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(spec.Seed)
	return nc, spec, data, m.Params
}

func newWorker(t *testing.T, nc *nats.Conn) *worker.Worker {
	cfg := worker.DefaultConfig()
	cfg.Backend = tensor.Reference
	cfg.PushTimeout, cfg.ParamWait, cfg.PullTimeout, cfg.StepTimeout = 100*time.Millisecond, 50*time.Millisecond, 200*time.Millisecond, 5*time.Second
	cfg.Logger = zaptest.NewLogger(t)
	return worker.New(nc, cfg)
}

func assignment(spec *jobspec.Spec, n, chunk int, steps int64) worker.Assignment {
	return worker.Assignment{Job: "j", ID: "w1", Spec: spec, Epoch: 1, Rank: 0, Members: 1,
		Ranges: []wire.Range{{Lo: 0, Hi: n}}, ChunkFloats: chunk, TotalSteps: steps}
}

// wantGradient is the mean gradient of batch t (file order) at θ,
// computed here with the same layers.
func wantGradient(t *testing.T, spec *jobspec.Spec, data train.Source, theta []float32, step int) []float32 {
	t.Helper()
	m, err := nn.Build(spec.Model, tensor.Reference)
	if err != nil {
		t.Fatal(err)
	}
	copy(m.Params, theta)
	B := spec.BatchSize
	idx := make([]int, B)
	for i := range idx {
		idx[i] = step*B + i
	}
	x, y := make([]float32, B*data.SampleSize()), make([]int32, B)
	if err := data.Batch(idx, x, y); err != nil {
		t.Fatal(err)
	}
	loss := nn.NewSoftmaxCrossEntropy(tensor.Reference, 10)
	loss.Forward(m.Forward(x, B, true), y, B)
	m.ZeroGrad()
	m.Backward(loss.Backward(), B)
	return m.Grads
}

// TestRunSteps: the worker pushes the gradient of its batch at θ_t chunk
// by chunk, takes the fanned-out θ_{t+1}, and ends holding θ_TotalSteps.
func TestRunSteps(t *testing.T) {
	nc, spec, data, theta0 := setup(t)
	const chunk, steps = 3000, 3 // 7,850 parameters: three chunks
	srv := newFakeServer(t, nc, "j", theta0, chunk, 0.5)
	m, err := newWorker(t, nc).Run(t.Context(), assignment(spec, len(theta0), chunk, steps), data)
	if err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for s := range int64(steps) {
		want := wantGradient(t, spec, data, srv.theta[s], int(s))
		if !slices.Equal(srv.grads[s], want) {
			t.Errorf("step %d: pushed gradient differs from the batch's gradient at θ_%d", s, s)
		}
	}
	if !slices.Equal(m.Params, srv.theta[steps]) {
		t.Error("the worker does not hold θ_3 at the end")
	}
	if got := srv.pushes.Load(); got != 3*steps {
		t.Errorf("%d pushes, want %d (3 chunks × %d steps, none retried)", got, 3*steps, steps)
	}
}

// TestRunRetriesUnansweredPushes: a push whose ack does not come within
// PushTimeout is sent again, and the step completes.
func TestRunRetriesUnansweredPushes(t *testing.T) {
	nc, spec, data, theta0 := setup(t)
	srv := newFakeServer(t, nc, "j", theta0, 3000, 0.5)
	srv.dropFirst = true
	m, err := newWorker(t, nc).Run(t.Context(), assignment(spec, len(theta0), 3000, 2), data)
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.pushes.Load(); got != 2*3*2 {
		t.Errorf("%d pushes, want 12 (each of 3 chunks × 2 steps twice)", got)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if !slices.Equal(m.Params, srv.theta[2]) {
		t.Error("the worker does not hold θ_2 at the end")
	}
}

// TestRunPullsMissedParameters: with no fan-out (missed), the worker pulls
// θ_{t+1} after ParamWait.
func TestRunPullsMissedParameters(t *testing.T) {
	nc, spec, data, theta0 := setup(t)
	srv := newFakeServer(t, nc, "j", theta0, 3000, 0.5)
	srv.quiet = true
	m, err := newWorker(t, nc).Run(t.Context(), assignment(spec, len(theta0), 3000, 3), data)
	if err != nil {
		t.Fatal(err)
	}
	if srv.pulls.Load() < 3*4 { // θ_0 … θ_3, three chunks each
		t.Errorf("%d pulls, want at least 12", srv.pulls.Load())
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if !slices.Equal(m.Params, srv.theta[3]) {
		t.Error("the worker does not hold θ_3 at the end")
	}
}

// TestRunCompressed: a job with compression pushes each gradient in its
// 16-bit encoding, the batch's gradient rounded to nearest; the steps go
// on as usual.
func TestRunCompressed(t *testing.T) {
	for _, c := range []struct {
		typ   string
		round func(float32) float32
	}{
		{"fp16", func(v float32) float32 { return wire.FromFloat16(wire.Float16(v)) }},
		{"bf16", func(v float32) float32 { return math.Float32frombits(uint32(wire.BFloat16(v)) << 16) }},
	} {
		t.Run(c.typ, func(t *testing.T) {
			nc, spec, data, theta0 := setup(t)
			spec.Compression = &jobspec.Compression{Type: c.typ}
			const chunk, steps = 3000, 2
			srv := newFakeServer(t, nc, "j", theta0, chunk, 0.5)
			m, err := newWorker(t, nc).Run(t.Context(), assignment(spec, len(theta0), chunk, steps), data)
			if err != nil {
				t.Fatal(err)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			for s := range int64(steps) {
				want := wantGradient(t, spec, data, srv.theta[s], int(s))
				for i, v := range want {
					if got := srv.grads[s][i]; got != c.round(v) {
						t.Fatalf("step %d: pushed g[%d] = %g, want %g rounded (%g)", s, i, got, v, c.round(v))
					}
				}
			}
			if !slices.Equal(m.Params, srv.theta[steps]) {
				t.Error("the worker does not hold the last θ")
			}
		})
	}
}

// TestRunSlowFanOutNotPulled: a fan-out of θ slower than the worker's
// ParamWait, but making progress (chunks 40 ms apart, a 50 ms wait), is
// waited for, not pulled beside: the only pulls are θ_0's, which no one
// fans out.
func TestRunSlowFanOutNotPulled(t *testing.T) {
	nc, spec, data, theta0 := setup(t)
	srv := newFakeServer(t, nc, "j", theta0, 3000, 0.5)
	srv.gap = 40 * time.Millisecond
	m, err := newWorker(t, nc).Run(t.Context(), assignment(spec, len(theta0), 3000, 3), data)
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.pulls.Load(); got != 3 {
		t.Errorf("%d pulls, want 3 (θ_0's three chunks only)", got)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if !slices.Equal(m.Params, srv.theta[3]) {
		t.Error("the worker does not hold θ_3 at the end")
	}
}

// TestRunCancelled: cancelling the context while the worker waits for θ
// ends Run at once with the context's error.
func TestRunCancelled(t *testing.T) {
	nc, spec, data, theta0 := setup(t)
	srv := newFakeServer(t, nc, "j", theta0, 3000, 0.5)
	srv.holdFrom = 2 // θ_2 never comes
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	_, err := newWorker(t, nc).Run(ctx, assignment(spec, len(theta0), 3000, 5), data)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Run took %v to notice the cancellation", took)
	}
}

// TestRunHoldsStepTimeout: θ that never comes ends Run with ErrTimeout
// after StepTimeout, not a hang.
func TestRunHoldsStepTimeout(t *testing.T) {
	nc, spec, data, theta0 := setup(t)
	srv := newFakeServer(t, nc, "j", theta0, 3000, 0.5)
	srv.holdFrom = 1
	cfg := worker.DefaultConfig()
	cfg.Backend = tensor.Reference
	cfg.ParamWait, cfg.PullTimeout, cfg.StepTimeout = 50*time.Millisecond, 100*time.Millisecond, 500*time.Millisecond
	start := time.Now()
	_, err := worker.New(nc, cfg).Run(t.Context(), assignment(spec, len(theta0), 3000, 3), data)
	if !errors.Is(err, worker.ErrTimeout) {
		t.Fatalf("Run: %v, want ErrTimeout", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Run took %v with a 500 ms step timeout", took)
	}
}

// TestRunEpochChanged: a server refusing a push as of another membership
// epoch ends Run with ErrEpochChanged (the worker takes its new
// assignment).
func TestRunEpochChanged(t *testing.T) {
	nc, spec, data, theta0 := setup(t)
	srv := newFakeServer(t, nc, "j", theta0, 3000, 0.5)
	srv.refuse = wire.AckEpoch
	_, err := newWorker(t, nc).Run(t.Context(), assignment(spec, len(theta0), 3000, 3), data)
	if !errors.Is(err, worker.ErrEpochChanged) {
		t.Fatalf("Run: %v, want ErrEpochChanged", err)
	}
}

// TestRunRejectsBadAssignments: assignments that cannot run are refused
// with ErrAssignment, before touching NATS.
func TestRunRejectsBadAssignments(t *testing.T) {
	nc, spec, data, theta0 := setup(t)
	w := newWorker(t, nc)
	for name, a := range map[string]worker.Assignment{
		"rank past members": {Job: "j", Spec: spec, Rank: 2, Members: 2, Ranges: []wire.Range{{Lo: 0, Hi: len(theta0)}}, TotalSteps: 1},
		"no servers":        {Job: "j", Spec: spec, Rank: 0, Members: 1, TotalSteps: 1},
		"no spec":           {Job: "j", Rank: 0, Members: 1, Ranges: []wire.Range{{Lo: 0, Hi: len(theta0)}}, TotalSteps: 1},
		"ranges too short":  {Job: "j", Spec: spec, Rank: 0, Members: 1, Ranges: []wire.Range{{Lo: 0, Hi: len(theta0) - 1}}, TotalSteps: 1},
	} {
		if _, err := w.Run(t.Context(), a, data); !errors.Is(err, worker.ErrAssignment) {
			t.Errorf("%s: %v, want ErrAssignment", name, err)
		}
	}
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/maas-ml/maas/tensor.(*workerPool).work"))
}

// noBatches is a data source whose batches must not be read.
type noBatches struct {
	train.Source
	reads atomic.Int32
}

func (s *noBatches) Batch(idx []int, x []float32, y []int32) error {
	s.reads.Add(1)
	return errors.New("a benchmark job read a batch")
}

// TestRunSynthetic: a benchmark job's worker reads no data and computes
// nothing; each step waits samples × synthetic_compute × dilation (or the
// worker's own SyntheticCompute in place of the job's), then pushes the
// same small, finite gradient of the model's size, and the steps go on
// through the servers as usual.
func TestRunSynthetic(t *testing.T) {
	for _, c := range []struct {
		name     string
		override time.Duration
		minStep  time.Duration // 8 samples × per-sample × dilation 5
	}{
		{"job's compute time", 0, 8 * 2 * 5 * time.Millisecond},
		{"worker's compute time", 4 * time.Millisecond, 8 * 4 * 5 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			nc, spec, data, theta0 := setup(t)
			spec.Benchmark = &jobspec.Benchmark{SyntheticCompute: "2ms", Dilation: 5}
			if err := spec.Validate(); err != nil {
				t.Fatal(err)
			}
			const chunk, steps = 3000, 3
			srv := newFakeServer(t, nc, "j", theta0, chunk, 0.5)
			src := &noBatches{Source: data}
			cfg := worker.DefaultConfig()
			cfg.Backend, cfg.Logger, cfg.SyntheticCompute = tensor.Reference, zaptest.NewLogger(t), c.override
			cfg.PushTimeout, cfg.ParamWait, cfg.PullTimeout, cfg.StepTimeout = 100*time.Millisecond, 50*time.Millisecond, 200*time.Millisecond, 5*time.Second
			reg := prometheus.NewPedanticRegistry()
			cfg.Registerer = reg
			var infos []worker.StepInfo
			cfg.OnStep = func(i worker.StepInfo) { infos = append(infos, i) }
			m, err := worker.New(nc, cfg).Run(t.Context(), assignment(spec, len(theta0), chunk, steps), src)
			if err != nil {
				t.Fatal(err)
			}
			if n := src.reads.Load(); n != 0 {
				t.Errorf("%d batches read", n)
			}
			if len(infos) != steps {
				t.Fatalf("%d steps reported, want %d", len(infos), steps)
			}
			var compute time.Duration
			for _, i := range infos {
				if i.Compute < c.minStep {
					t.Errorf("step %d: compute %v, want at least %v", i.Step, i.Compute, c.minStep)
				}
				compute += i.Compute
			}
			// The metrics count every step's phases and samples.
			if n := testutil.CollectAndCount(reg, "maas_worker_step_seconds"); n != 4 {
				t.Errorf("maas_worker_step_seconds has %d series, want 4 phases", n)
			}
			if got := counter(t, reg, "maas_worker_samples_total"); got != 8*steps {
				t.Errorf("maas_worker_samples_total %g, want %d", got, 8*steps)
			}
			if sum, count := histogram(t, reg, "compute"); count != steps || math.Abs(sum-compute.Seconds()) > 1e-6 {
				t.Errorf("compute phase: %d steps summing to %gs, want %d summing to %v", count, sum, steps, compute)
			}
			// Per job: the last step's loss, the membership epoch, and the
			// bytes both ways (every step's gradient out, θ in).
			job := map[string]string{"maas_job": "j"}
			if got := testcluster.MustMetricValue(t, reg, "maas_worker_loss", job); got != float64(infos[steps-1].Loss) {
				t.Errorf("maas_worker_loss %g, want the last step's %g", got, infos[steps-1].Loss)
			}
			if got := testcluster.MustMetricValue(t, reg, "maas_worker_membership_epoch", job); got != 1 {
				t.Errorf("maas_worker_membership_epoch %g, want 1", got)
			}
			floats := float64(4 * len(theta0) * steps)
			if got := testcluster.MustMetricValue(t, reg, "maas_worker_bytes_total", map[string]string{"maas_job": "j", "direction": "pushed"}); got < floats || got > 1.1*floats {
				t.Errorf("%g bytes pushed, want %g and the messages' headers", got, floats)
			}
			if got := testcluster.MustMetricValue(t, reg, "maas_worker_bytes_total", map[string]string{"maas_job": "j", "direction": "received"}); got < floats {
				t.Errorf("%g bytes of θ received, want at least %g", got, floats)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			g0 := srv.grads[0]
			var nonzero int
			for _, v := range g0 {
				if math.IsNaN(float64(v)) || math.Abs(float64(v)) > 1e-3 {
					t.Fatalf("synthetic gradient value %g, want finite and within ±1e-3", v)
				}
				if v != 0 {
					nonzero++
				}
			}
			if nonzero < len(g0)*9/10 {
				t.Errorf("%d of %d synthetic gradient values are not zero", nonzero, len(g0))
			}
			for s := int64(1); s < steps; s++ {
				if !slices.Equal(srv.grads[s], g0) {
					t.Errorf("step %d pushed another gradient than step 0", s)
				}
			}
			if !slices.Equal(m.Params, srv.theta[steps]) {
				t.Error("the worker does not hold θ_3 at the end")
			}
		})
	}
}

// counter returns the value of the counter name registered in reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}

// histogram returns the sum and count of maas_worker_step_seconds for
// phase.
func histogram(t *testing.T, reg *prometheus.Registry, phase string) (float64, uint64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "maas_worker_step_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "phase" && l.GetValue() == phase {
					return m.GetHistogram().GetSampleSum(), m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	t.Fatalf("no maas_worker_step_seconds{phase=%q}", phase)
	return 0, 0
}

// TestRunOverlap: with overlap (the default) each bucket of the gradient
// is pushed as soon as backward has finished it, the last layer's first,
// and the next forward starts while θ is still arriving (a slow fan-out):
// the gradients pushed are those of a worker that waited for all of θ.
// Synthetic steps are emulated layer by layer: the last layer's bucket
// goes out while the first layer's backward (two thirds of the step) is
// still running. Without overlap every bucket goes after backward.
func TestRunOverlap(t *testing.T) {
	layers := []nn.LayerSpec{{Type: "flatten"}, {Type: "dense", Units: 64}, {Type: "relu"}, {Type: "dense", Units: 10}}
	// 50,240 + 650 parameters: 16 chunks of the first layer, the 17th the
	// last layer's.
	const chunk, steps = 3140, 3
	for _, overlap := range []string{"backward", "none"} {
		t.Run(overlap, func(t *testing.T) {
			nc, spec, data, _ := setup(t)
			spec.Model.Layers, spec.Overlap = layers, overlap
			m, err := nn.Build(spec.Model, tensor.Reference)
			if err != nil {
				t.Fatal(err)
			}
			m.Init(spec.Seed)
			srv := newFakeServer(t, nc, "j", m.Params, chunk, 0.5)
			srv.gap = 2 * time.Millisecond
			got, err := newWorker(t, nc).Run(t.Context(), assignment(spec, len(m.Params), chunk, steps), data)
			if err != nil {
				t.Fatal(err)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			for s := range int64(steps) {
				if want := wantGradient(t, spec, data, srv.theta[s], int(s)); !slices.Equal(srv.grads[s], want) {
					t.Errorf("step %d: pushed gradient differs from the batch's gradient at θ_%d", s, s)
				}
			}
			if !slices.Equal(got.Params, srv.theta[steps]) {
				t.Error("the worker does not hold θ_3 at the end")
			}
		})
		t.Run(overlap+"/synthetic", func(t *testing.T) {
			nc, spec, data, _ := setup(t)
			spec.Model.Layers, spec.Overlap = layers, overlap
			spec.Benchmark = &jobspec.Benchmark{SyntheticCompute: "5ms", Dilation: 2}
			m, err := nn.Build(spec.Model, tensor.Reference)
			if err != nil {
				t.Fatal(err)
			}
			newFakeServer(t, nc, "j", m.Params, chunk, 0.5)
			var mu sync.Mutex
			arrived := map[[2]int64]time.Time{}
			sub, err := nc.Subscribe(wire.GradSubjects("j", 0), func(msg *nats.Msg) {
				var g wire.GradChunk
				if wire.Decode(msg.Data, &g) == nil {
					mu.Lock()
					arrived[[2]int64{g.Step, int64(g.Chunk)}] = time.Now()
					mu.Unlock()
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			cfg := worker.DefaultConfig()
			cfg.Backend, cfg.Logger = tensor.Reference, zaptest.NewLogger(t)
			cfg.PushTimeout, cfg.ParamWait, cfg.PullTimeout, cfg.StepTimeout = 100*time.Millisecond, 50*time.Millisecond, 200*time.Millisecond, 5*time.Second
			var infos []worker.StepInfo
			cfg.OnStep = func(i worker.StepInfo) { infos = append(infos, i) }
			if _, err := worker.New(nc, cfg).Run(t.Context(), assignment(spec, len(m.Params), chunk, steps), &noBatches{Source: data}); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			var gaps []time.Duration
			for _, i := range infos {
				// 8 samples × 10 ms: a forward of 27 ms, the first layer's
				// backward 52 ms of the 53 ms backward.
				last, first := arrived[[2]int64{i.Step, 16}], arrived[[2]int64{i.Step, 0}]
				gaps = append(gaps, first.Sub(last))
				switch {
				case i.Compute < 78*time.Millisecond:
					t.Errorf("step %d: compute %v, want 80 ms", i.Step, i.Compute)
				case overlap == "backward" && (i.Overlapped < 45*time.Millisecond || first.Sub(last) < 45*time.Millisecond):
					t.Errorf("step %d: pushes beside compute for %v, the last layer's %v before the first's; want about 52 ms",
						i.Step, i.Overlapped, first.Sub(last))
				case overlap == "none" && i.Overlapped != 0:
					t.Errorf("step %d: without overlap, pushes beside compute for %v", i.Step, i.Overlapped)
				}
			}
			// Without overlap all buckets go after backward, the last
			// layer's first: apart by the time to send them, not by the
			// 52 ms of the first layer's backward. The median step's gap,
			// as one step's sending can be held up on a loaded machine
			// (-race beside other packages' tests).
			slices.Sort(gaps)
			if g := gaps[len(gaps)/2]; overlap == "none" && g > 25*time.Millisecond {
				t.Errorf("without overlap, the last layer's bucket arrives a median %v before the first's (gaps %v)", g, gaps)
			}
		})
	}
}

// TestRunErrorFeedback: with int8 and topk a worker pushes each chunk of
// its gradient plus what its earlier pushes left out of that chunk, in the
// encoding: the first step's push is the gradient encoded, every later
// one the encoding of the gradient and the remainder, chunk by chunk.
func TestRunErrorFeedback(t *testing.T) {
	for _, typ := range []string{"int8", "topk"} {
		t.Run(typ, func(t *testing.T) {
			nc, spec, data, theta0 := setup(t)
			spec.Compression = &jobspec.Compression{Type: typ}
			if typ == "topk" {
				spec.Compression.Ratio = 0.05
			}
			enc, ratio := spec.Encoding(), spec.TopKRatio()
			const chunk, steps = 3000, 4
			srv := newFakeServer(t, nc, "j", theta0, chunk, 0.5)
			if _, err := newWorker(t, nc).Run(t.Context(), assignment(spec, len(theta0), chunk, steps), data); err != nil {
				t.Fatal(err)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			left := make([]float32, len(theta0)) // what the pushes have left out
			for s := range int64(steps) {
				g := wantGradient(t, spec, data, srv.theta[s], int(s))
				for _, r := range wire.Chunks(wire.Range{Lo: 0, Hi: len(g)}, chunk) {
					u := make([]float32, r.Len())
					for i := range u {
						u[i] = g[r.Lo+i] + left[r.Lo+i]
					}
					sent := make([]float32, len(u))
					if err := wire.DecodeFloats(sent, wire.AppendCompressed(nil, u, enc, ratio), enc); err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(srv.grads[s][r.Lo:r.Hi], sent) {
						t.Fatalf("step %d chunk at %d: the push is not the encoding of the gradient and what earlier pushes left out", s, r.Lo)
					}
					for i := range u {
						left[r.Lo+i] = u[i] - sent[i]
					}
				}
			}
			var nonzero int
			for _, v := range left {
				if v != 0 {
					nonzero++
				}
			}
			if nonzero == 0 {
				t.Error("nothing was left out: the test does not exercise the feedback")
			}
		})
	}
}
