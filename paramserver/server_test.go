package paramserver_test

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/maas-ml/maas/internal/testcluster"
	"github.com/maas-ml/maas/internal/wire"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/paramserver"
)

// fixture serves a 10-float range split in chunks of 4 (chunks 0..2) to two
// ranks with plain SGD at lr 1, so θ_{t+1} = θ_t − Σ_r (n_r/B)·g_r.
type fixture struct {
	t       *testing.T
	nc      *nats.Conn
	ps      *paramserver.Server
	params  chan *wire.ParamChunk
	reports chan *wire.Report
	reg     *prometheus.Registry
}

func newFixture(t *testing.T, barrier time.Duration, maxBad int) *fixture {
	return newFixtureOpt(t, barrier, maxBad, nn.OptimizerSpec{Type: "sgd", LR: 1})
}

// newFixtureOpt is newFixture with optimizer opt; adjust, when set,
// changes the assignment.
func newFixtureOpt(t *testing.T, barrier time.Duration, maxBad int, opt nn.OptimizerSpec, adjust ...func(*paramserver.Assignment)) *fixture {
	s := testcluster.StartNATS(t)
	f := &fixture{t: t, nc: testcluster.Connect(t, s), params: make(chan *wire.ParamChunk, 100), reports: make(chan *wire.Report, 100)}
	f.nc.Subscribe(wire.ParamSubject("j"), func(m *nats.Msg) {
		var pc wire.ParamChunk
		if wire.Decode(m.Data, &pc) == nil {
			f.params <- &pc
		}
	})
	f.nc.Subscribe(wire.ReportSubject("*"), func(m *nats.Msg) {
		var r wire.Report
		if wire.Decode(m.Data, &r) == nil {
			f.reports <- &r
		}
	})
	f.nc.Flush()
	cfg := paramserver.DefaultConfig()
	cfg.BarrierTimeout = barrier
	f.reg = prometheus.NewPedanticRegistry()
	cfg.Registerer = f.reg
	f.ps = paramserver.New(testcluster.Connect(t, s), cfg)
	a := paramserver.Assignment{Job: "j", Ranges: []wire.Range{{Lo: 0, Hi: 10}}, ChunkFloats: 4, Epoch: 1, Members: 2,
		Optimizer: opt, StepsPerEpoch: 10, TotalSteps: 10, MaxBadSteps: maxBad}
	for _, f := range adjust {
		f(&a)
	}
	if err := f.ps.Serve(a, make([]float32, 10), nil); err != nil {
		t.Fatal(err)
	}
	f.collect(0) // θ_0 is published at start
	return f
}

func (f *fixture) push(step int64, rank, n, chunk int, vals []float32, epoch uint64) wire.Ack {
	f.t.Helper()
	return f.pushAs(fmt.Sprintf("w%d", rank), step, rank, n, chunk, vals, epoch)
}

// pushAs pushes as worker id (the last token of the subject).
func (f *fixture) pushAs(id string, step int64, rank, n, chunk int, vals []float32, epoch uint64) wire.Ack {
	f.t.Helper()
	return f.pushChunk(id, wire.GradChunk{Epoch: epoch, Step: step, Rank: rank, N: n, Chunk: chunk, Data: wire.AppendFloats(nil, vals)})
}

func fill(n int, v float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// pushAll pushes a full gradient of constant value v for rank with n samples.
func (f *fixture) pushAll(step int64, rank, n int, v float32) { f.pushAllEpoch(step, rank, n, v, 1) }

func (f *fixture) pushAllEpoch(step int64, rank, n int, v float32, epoch uint64) {
	for c, size := range []int{4, 4, 2} {
		if ack := f.push(step, rank, n, c, fill(size, v), epoch); !ack.Accepted() {
			f.t.Fatalf("push step %d rank %d chunk %d: %s %s", step, rank, c, ack.Code, ack.Reason)
		}
	}
}

// collect returns θ_step from the fanned-out chunks.
func (f *fixture) collect(step int64) []float32 {
	f.t.Helper()
	theta := make([]float32, 10)
	for got := 0; got < 3; {
		select {
		case pc := <-f.params:
			if pc.Step != step {
				f.t.Fatalf("got θ_%d, want θ_%d", pc.Step, step)
			}
			if err := wire.Floats(theta[pc.Offset:pc.Offset+len(pc.Data)/4], pc.Data); err != nil {
				f.t.Fatal(err)
			}
			got++
		case <-time.After(5 * time.Second):
			f.t.Fatalf("θ_%d not published", step)
		}
	}
	return theta
}

func TestWeightedAverageAndPublication(t *testing.T) {
	f := newFixture(t, time.Minute, 3)
	// Rank 0: 3 samples of gradient 1; rank 1: 1 sample of gradient 5.
	// Σ (n_r/B)·g_r = 3/4·1 + 1/4·5 = 2, so θ_1 = −2.
	f.pushAll(0, 0, 3, 1)
	f.pushAll(0, 1, 1, 5)
	theta := f.collect(1)
	for i, v := range theta {
		if v != -2 {
			t.Fatalf("θ_1[%d] = %g, want −2", i, v)
		}
	}
	st, _ := f.ps.Stats("j")
	if st.Step != 1 || st.Completed != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The metrics, per job: one step, its barrier, 2 ranks × 10 floats
	// taken, θ_0 and θ_1 published, membership epoch 1.
	job := map[string]string{"maas_job": "j"}
	for name, want := range map[string]float64{"maas_paramserver_steps_total": 1, "maas_paramserver_membership_epoch": 1} {
		if got := testcluster.MustMetricValue(t, f.reg, name, job); got != want {
			t.Errorf("%s = %g, want %g", name, got, want)
		}
	}
	if got := testcluster.MustMetricValue(t, f.reg, "maas_paramserver_bytes_total", map[string]string{"maas_job": "j", "direction": "received"}); got != 2*10*4 {
		t.Errorf("%g gradient bytes taken, want 80", got)
	}
	if got := testcluster.MustMetricValue(t, f.reg, "maas_paramserver_bytes_total", map[string]string{"maas_job": "j", "direction": "published"}); got < 2*10*4 {
		t.Errorf("%g bytes of θ published, want at least θ_0's and θ_1's 80", got)
	}
	if n := testutil.CollectAndCount(f.reg, "maas_paramserver_barrier_seconds"); n != 1 {
		t.Errorf("maas_paramserver_barrier_seconds has %d series, want 1", n)
	}
}

// TestCompressedPushes: gradients pushed in fp16 and in bf16 (one rank
// each) are decoded and averaged like float32 ones; a chunk whose bytes
// do not fit its encoding is refused.
func TestCompressedPushes(t *testing.T) {
	f := newFixture(t, time.Minute, 3)
	push := func(rank int, enc wire.Encoding, v float32) {
		for c, size := range []int{4, 4, 2} {
			b, _ := wire.Encode(&wire.GradChunk{V: wire.Version, Job: "j", Epoch: 1, Step: 0, Rank: rank, N: 1, Chunk: c,
				Data: wire.AppendEncoded(nil, fill(size, v), enc), Enc: enc})
			m, err := f.nc.Request(wire.GradSubject("j", 0, fmt.Sprintf("w%d", rank)), b, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			var ack wire.Ack
			if err := wire.Decode(m.Data, &ack); err != nil || !ack.Accepted() {
				t.Fatalf("rank %d chunk %d in %q: %+v %v", rank, c, enc, ack, err)
			}
		}
	}
	// 0.1 is not a half: fp16 sends 0.0999755859375, bf16 0.10009765625.
	push(0, wire.EncFloat16, 0.1)
	push(1, wire.EncBFloat16, 0.1)
	want := -(wire.FromFloat16(wire.Float16(0.1))*0.5 + math.Float32frombits(uint32(wire.BFloat16(0.1))<<16)*0.5)
	for i, v := range f.collect(1) {
		if math.Abs(float64(v-want)) > 1e-7 {
			t.Fatalf("θ_1[%d] = %g, want %g", i, v, want)
		}
	}
	b, _ := wire.Encode(&wire.GradChunk{V: wire.Version, Job: "j", Epoch: 1, Step: 1, Rank: 0, N: 1, Chunk: 0,
		Data: wire.AppendFloats(nil, fill(4, 1)), Enc: wire.EncFloat16})
	m, err := f.nc.Request(wire.GradSubject("j", 0, "w0"), b, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var ack wire.Ack
	if err := wire.Decode(m.Data, &ack); err != nil || ack.Accepted() {
		t.Fatalf("16 bytes labelled fp16 for 4 floats: %+v %v", ack, err)
	}
}

func TestDuplicatesStaleFutureAndEpoch(t *testing.T) {
	f := newFixture(t, time.Minute, 3)
	if ack := f.push(0, 0, 2, 0, fill(4, 1), 1); ack.Code != wire.AckOK {
		t.Fatalf("first push: %+v", ack)
	}
	if ack := f.push(0, 0, 2, 0, fill(4, 100), 1); ack.Code != wire.AckDuplicate {
		t.Fatalf("duplicate push: %+v", ack)
	}
	if ack := f.push(1, 0, 2, 0, fill(4, 1), 1); ack.Code != wire.AckFuture {
		t.Fatalf("future step: %+v", ack)
	}
	if ack := f.push(0, 0, 2, 1, fill(4, 1), 2); ack.Code != wire.AckEpoch {
		t.Fatalf("other epoch: %+v", ack)
	}
	if ack := f.push(0, 5, 2, 1, fill(4, 1), 1); ack.Code != wire.AckRejected {
		t.Fatalf("unknown rank: %+v", ack)
	}
	if ack := f.push(0, 1, 2, 1, fill(3, 1), 1); ack.Code != wire.AckRejected {
		t.Fatalf("short chunk: %+v", ack)
	}
	// A job the server does not hold (it restarted, or the job moved
	// away): the worker waits for its next membership epoch.
	b, _ := wire.Encode(&wire.GradChunk{V: wire.Version, Job: "other", Epoch: 1, Rank: 0, N: 2, Chunk: 1, Data: wire.AppendFloats(nil, fill(4, 1))})
	m, err := f.nc.Request(wire.GradSubject("j", 0, "w0"), b, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var unknown wire.Ack
	if wire.Decode(m.Data, &unknown); unknown.Code != wire.AckEpoch || !strings.Contains(unknown.Reason, "not served") {
		t.Fatalf("a job the server does not hold: %+v", unknown)
	}
	b, _ = wire.Encode(&wire.GradChunk{V: 99, Job: "j"})
	m, err = f.nc.Request(wire.GradSubject("j", 0, "w"), b, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var ack wire.Ack
	wire.Decode(m.Data, &ack)
	if ack.Code != wire.AckRejected {
		t.Fatalf("unknown message version: %+v", ack)
	}
	// Finish step 0; the duplicate's 100s must not have been used.
	f.push(0, 0, 2, 1, fill(4, 1), 1)
	f.push(0, 0, 2, 2, fill(2, 1), 1)
	f.pushAll(0, 1, 2, 1)
	if theta := f.collect(1); theta[0] != -1 {
		t.Fatalf("θ_1[0] = %g, want −1 (the duplicate was averaged in?)", theta[0])
	}
	if ack := f.push(0, 0, 2, 0, fill(4, 1), 1); ack.Code != wire.AckStale {
		t.Fatalf("stale step: %+v", ack)
	}
	st, _ := f.ps.Stats("j")
	if st.Duplicates != 1 || st.Rejected != 7 { // the other job's push on j's subject counts for j
		t.Fatalf("stats %+v, want 1 duplicate and 7 rejected", st)
	}
}

func TestNonFiniteStepsSkippedThenFail(t *testing.T) {
	f := newFixture(t, time.Minute, 1)
	for step := int64(0); step < 2; step++ {
		f.pushAll(step, 0, 1, float32(math.NaN()))
		f.pushAll(step, 1, 1, 1)
		theta := f.collect(step + 1)
		for _, v := range theta {
			if v != 0 {
				t.Fatalf("a skipped step changed θ: %v", theta)
			}
		}
	}
	kinds := map[string]int{}
	timeout := time.After(5 * time.Second)
	for kinds["failed"] == 0 {
		select {
		case r := <-f.reports:
			kinds[r.Kind]++
		case <-timeout:
			t.Fatalf("no failure reported after 2 bad steps with max_bad_steps 1: %v", kinds)
		}
	}
	if kinds["bad_step"] != 2 {
		t.Fatalf("reports %v", kinds)
	}
	if ack := f.push(2, 0, 1, 0, fill(4, 1), 1); ack.Accepted() {
		t.Fatal("a failed job still takes pushes")
	}
}

func TestBarrierTimeoutReportsMissing(t *testing.T) {
	f := newFixture(t, 200*time.Millisecond, 3)
	f.pushAll(0, 0, 1, 1) // rank 1 never pushes
	timeout := time.After(5 * time.Second)
	for {
		select {
		case r := <-f.reports:
			if r.Kind == "missing" {
				if len(r.Missing) != 1 || r.Missing[0] != 1 || r.Step != 0 {
					t.Fatalf("report %+v, want rank 1 missing at step 0", r)
				}
				return
			}
		case <-timeout:
			t.Fatal("no missing-member report after the barrier timeout")
		}
	}
}

func TestPull(t *testing.T) {
	f := newFixture(t, time.Minute, 3)
	pull := func(step int64, chunk int) (*wire.ParamChunk, string) {
		b, _ := wire.Encode(&wire.PullRequest{V: wire.Version, Job: "j", Step: step, Chunk: chunk})
		m, err := f.nc.Request(wire.PullSubject("j", 0), b, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if code := m.Header.Get(wire.HeaderAck); code != "" {
			return nil, code
		}
		var pc wire.ParamChunk
		if err := wire.Decode(m.Data, &pc); err != nil {
			t.Fatal(err)
		}
		return &pc, ""
	}
	if pc, code := pull(0, 2); pc == nil || pc.Offset != 8 || len(pc.Data) != 8 {
		t.Fatalf("pull θ_0 chunk 2: %+v %s", pc, code)
	}
	if _, code := pull(1, 0); code != string(wire.AckFuture) {
		t.Fatalf("pull of a future step: %q", code)
	}
	if _, code := pull(0, 7); code != string(wire.AckRejected) {
		t.Fatalf("pull of a chunk out of range: %q", code)
	}
}

func TestBadAssignments(t *testing.T) {
	s := testcluster.StartNATS(t)
	ps := paramserver.New(testcluster.Connect(t, s), paramserver.DefaultConfig())
	good := paramserver.Assignment{Job: "j", Ranges: []wire.Range{{Lo: 0, Hi: 5}, {Lo: 5, Hi: 10}}, Members: 1,
		Optimizer: nn.OptimizerSpec{Type: "sgd", LR: 1}, StepsPerEpoch: 1, TotalSteps: 1}
	cases := map[string]func(a *paramserver.Assignment){
		"bad job id":          func(a *paramserver.Assignment) { a.Job = "a.b" },
		"server out of range": func(a *paramserver.Assignment) { a.Server = 2 },
		"no members":          func(a *paramserver.Assignment) { a.Members = 0 },
		"gap in ranges":       func(a *paramserver.Assignment) { a.Ranges[1].Lo = 6 },
		"clip with 2 servers": func(a *paramserver.Assignment) { a.Optimizer.ClipNorm = 1 },
	}
	for name, mutate := range cases {
		a := good
		a.Ranges = append([]wire.Range(nil), good.Ranges...)
		mutate(&a)
		if err := ps.Serve(a, make([]float32, 5), nil); err == nil {
			t.Errorf("%s: served", name)
		}
	}
	if err := ps.Serve(good, make([]float32, 4), nil); err == nil {
		t.Error("served with the wrong number of initial parameters")
	}
}

// TestReconfigureUndoesTheLastStep: losing a member after this range
// applied step 1 (but before every range did) moves to a new epoch from
// step 1: θ_1 and Adam's moments and step count come back bit for bit, the
// survivor's recomputed step 1 gives what one Adam run over the same
// gradients gives, an older step cannot be undone, and partial sums of a
// step in flight are dropped.
func TestReconfigureUndoesTheLastStep(t *testing.T) {
	adam := nn.OptimizerSpec{Type: "adam", LR: 0.1}
	f := newFixtureOpt(t, time.Minute, 3, adam)
	f.pushAll(0, 0, 1, 1)
	f.pushAll(0, 1, 1, 3)
	theta1 := f.collect(1)
	f.pushAll(1, 0, 1, 2)
	f.pushAll(1, 1, 1, 4)
	f.collect(2)
	asg := paramserver.Assignment{Job: "j", Ranges: []wire.Range{{Lo: 0, Hi: 10}}, ChunkFloats: 4, Epoch: 2, Members: 1,
		FromStep: 1, Optimizer: adam, StepsPerEpoch: 10, TotalSteps: 10, MaxBadSteps: 3}
	if err := f.ps.Reconfigure(asg); err != nil {
		t.Fatal(err)
	}
	if got := f.collect(1); !slices.Equal(got, theta1) {
		t.Fatalf("θ_1 after the undo %v, want %v", got, theta1)
	}
	if st, _ := f.ps.Stats("j"); st.Step != 1 || st.Completed != 1 {
		t.Fatalf("stats after the undo %+v", st)
	}
	f.pushAllEpoch(1, 0, 1, 5, 2)
	got := f.collect(2)
	// The reference: one Adam over the mean gradients 2 (step 0) and 5.
	want := make([]float32, 10)
	opt, err := nn.NewOptimizer(adam, 10)
	if err != nil {
		t.Fatal(err)
	}
	opt.Step(want, fill(10, 2), 0.1)
	opt.Step(want, fill(10, 5), 0.1)
	if !slices.Equal(got, want) {
		t.Fatalf("θ_2 recomputed by the survivor %v, want %v", got, want)
	}
	// Two steps back is a checkpoint restore, not an undo.
	asg.Epoch, asg.FromStep = 3, 0
	if err := f.ps.Reconfigure(asg); err == nil || !strings.Contains(err.Error(), "only the last step") {
		t.Fatalf("undoing two steps: %v", err)
	}
	// A partial step is dropped: the same rank pushes it again in the new
	// epoch and its new values count.
	if ack := f.push(2, 0, 1, 0, fill(4, 100), 2); !ack.Accepted() {
		t.Fatalf("partial push: %+v", ack)
	}
	asg.Epoch, asg.FromStep = 3, 2
	if err := f.ps.Reconfigure(asg); err != nil {
		t.Fatal(err)
	}
	f.collect(2)
	f.pushAllEpoch(2, 0, 1, 7, 3)
	got = f.collect(3)
	opt.Step(want, fill(10, 7), 0.1)
	if !slices.Equal(got, want) {
		t.Fatalf("θ_3 after a dropped partial step %v, want %v", got, want)
	}
}

// TestFence: a fenced range refuses pushes as of a changed epoch and
// completes no step, answers the step it holds, lifts after its hold
// without a new epoch, and a new epoch (Reconfigure) lifts it at once.
func TestFence(t *testing.T) {
	f := newFixture(t, time.Minute, 3)
	f.pushAll(0, 0, 1, 1)
	f.pushAll(0, 1, 1, 3)
	f.collect(1)
	if ack := f.push(1, 0, 1, 0, fill(4, 1), 1); !ack.Accepted() { // a partial step 1
		t.Fatalf("push before the fence: %+v", ack)
	}
	if _, err := f.ps.Fence("j", 2, time.Minute); err == nil || !strings.Contains(err.Error(), "epoch 2") {
		t.Fatalf("fencing an epoch the range is not in: %v", err)
	}
	if _, err := f.ps.Fence("nope", 1, time.Minute); !errors.Is(err, paramserver.ErrUnknownJob) {
		t.Fatalf("fencing an unknown job: %v", err)
	}
	step, err := f.ps.Fence("j", 1, 300*time.Millisecond)
	if err != nil || step != 1 {
		t.Fatalf("fence: step %d, %v; want 1", step, err)
	}
	if ack := f.push(1, 1, 1, 0, fill(4, 1), 1); ack.Code != wire.AckEpoch {
		t.Fatalf("a push to a fenced range: %+v, want a changed-epoch refusal", ack)
	}
	// The hold passes without a new epoch: pushes are taken again and the
	// step completes.
	deadline := time.Now().Add(5 * time.Second)
	for f.push(1, 1, 1, 0, fill(4, 1), 1).Code == wire.AckEpoch {
		if time.Now().After(deadline) {
			t.Fatal("the fence did not lift after its hold")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for c := 1; c < 3; c++ {
		for r := 0; r < 2; r++ {
			f.push(1, r, 1, c, fill(4, 1)[:min(4, 10-4*c)], 1)
		}
	}
	f.collect(2)
	// Fenced again, then a new epoch from the step it answered: pushes of
	// the new epoch are taken at once.
	if step, err = f.ps.Fence("j", 1, time.Minute); err != nil || step != 2 {
		t.Fatalf("second fence: step %d, %v; want 2", step, err)
	}
	asg := paramserver.Assignment{Job: "j", Ranges: []wire.Range{{Lo: 0, Hi: 10}}, ChunkFloats: 4, Epoch: 2, Members: 1,
		FromStep: step, Optimizer: nn.OptimizerSpec{Type: "sgd", LR: 1}, StepsPerEpoch: 10, TotalSteps: 10, MaxBadSteps: 3}
	if err := f.ps.Reconfigure(asg); err != nil {
		t.Fatal(err)
	}
	f.collect(2)
	if ack := f.push(2, 0, 1, 0, fill(4, 1), 2); !ack.Accepted() {
		t.Fatalf("a push of the new epoch: %+v", ack)
	}
}

// TestPushOnlyAsItsRank: with the ranks' worker ids known, a push is taken
// only from the rank's own worker, the id that ends its subject.
func TestPushOnlyAsItsRank(t *testing.T) {
	f := newFixture(t, time.Minute, 3)
	asg := paramserver.Assignment{Job: "j", Ranges: []wire.Range{{Lo: 0, Hi: 10}}, ChunkFloats: 4, Epoch: 2, Members: 2,
		MemberIDs: []string{"w0", "w1"}, Optimizer: nn.OptimizerSpec{Type: "sgd", LR: 1}, StepsPerEpoch: 10, TotalSteps: 10, MaxBadSteps: 3}
	if err := f.ps.Reconfigure(asg); err != nil {
		t.Fatal(err)
	}
	if ack := f.pushAs("w1", 0, 0, 1, 0, fill(4, 1), 2); ack.Code != wire.AckRejected || !strings.Contains(ack.Reason, "worker w0") {
		t.Fatalf("rank 0 pushed as w1: %+v, want a refusal naming w0", ack)
	}
	before, _ := f.ps.Stats("j")
	if ack := f.pushAs("w0", 0, 0, 1, 0, fill(4, 1), 2); !ack.Accepted() {
		t.Fatalf("rank 0 pushed as w0: %+v", ack)
	}
	if after, _ := f.ps.Stats("j"); after.Rejected != before.Rejected {
		t.Fatalf("an accepted push counted as rejected: %+v", after)
	}
}

// TestParamDeltas: a compressed job's θ fans out whole at the start, then
// as each step's change in the job's encoding, which a member adds to
// what it holds; what it holds is then the server's answer to a pull, bit
// for bit, close to θ (what one message leaves out goes with the next),
// and the job's last θ fans out whole and exact.
func TestParamDeltas(t *testing.T) {
	for _, c := range []struct {
		enc wire.Encoding
		tol float64 // |held − θ| after a step, against a change of up to 1
	}{{wire.EncFloat16, 1e-3}, {wire.EncBFloat16, 4e-3}, {wire.EncInt8, 8e-3}} {
		t.Run(string(c.enc), func(t *testing.T) {
			const last = 4
			f := newFixtureOpt(t, time.Minute, 3, nn.OptimizerSpec{Type: "sgd", LR: 1}, func(a *paramserver.Assignment) {
				a.ParamEnc, a.LastStep = c.enc, last
			})
			held := make([]float32, 10) // θ_0 = 0, as fanned out whole
			exact := make([]float64, 10)
			for step := int64(0); step < last; step++ {
				v0, v1 := 0.1+0.37*float64(step), 0.05-0.23*float64(step)
				f.pushAll(step, 0, 3, float32(v0))
				f.pushAll(step, 1, 1, float32(v1))
				for i := range exact {
					exact[i] -= (3*float64(float32(v0)) + float64(float32(v1))) / 4
				}
				for got := 0; got < 3; got++ {
					var pc *wire.ParamChunk
					select {
					case pc = <-f.params:
					case <-time.After(5 * time.Second):
						t.Fatalf("θ_%d not published", step+1)
					}
					dst := held[pc.Offset : pc.Offset+map[int]int{0: 4, 1: 4, 2: 2}[pc.Chunk]]
					if step+1 == last {
						if pc.Delta || wire.Floats(dst, pc.Data) != nil {
							t.Fatalf("the last θ fanned out as a change (%v) or malformed", pc.Delta)
						}
						continue
					}
					if !pc.Delta || pc.Enc != c.enc || len(pc.Data) >= 4*len(dst) {
						t.Fatalf("θ_%d chunk %d: delta %v in %q, %d bytes for %d values", pc.Step, pc.Chunk, pc.Delta, pc.Enc, len(pc.Data), len(dst))
					}
					d := make([]float32, len(dst))
					if err := wire.DecodeFloats(d, pc.Data, pc.Enc); err != nil {
						t.Fatal(err)
					}
					for i, v := range d {
						dst[i] += v
					}
				}
				for chunk := range 3 {
					pc := f.pull(step+1, chunk)
					want := make([]float32, len(pc.Data)/4)
					if err := wire.Floats(want, pc.Data); err != nil || pc.Delta {
						t.Fatalf("pull of θ_%d chunk %d: delta %v, %v", step+1, chunk, pc.Delta, err)
					}
					if !slices.Equal(held[pc.Offset:pc.Offset+len(want)], want) {
						t.Fatalf("θ_%d chunk %d: a member holds %v, a pull answers %v", step+1, chunk, held[pc.Offset:pc.Offset+len(want)], want)
					}
				}
				tol := c.tol
				if step+1 == last {
					tol = 1e-6
				}
				for i, v := range held {
					if math.Abs(float64(v)-exact[i]) > tol {
						t.Fatalf("θ_%d[%d]: a member holds %g, θ is %g", step+1, i, v, exact[i])
					}
				}
			}
		})
	}
}

// pull asks the server for chunk of θ_step.
func (f *fixture) pull(step int64, chunk int) *wire.ParamChunk {
	f.t.Helper()
	b, _ := wire.Encode(&wire.PullRequest{V: wire.Version, Job: "j", Step: step, Chunk: chunk})
	m, err := f.nc.Request(wire.PullSubject("j", 0), b, time.Second)
	if err != nil {
		f.t.Fatal(err)
	}
	var pc wire.ParamChunk
	if err := wire.Decode(m.Data, &pc); err != nil {
		f.t.Fatal(err)
	}
	return &pc
}

// TestCheckpointMetric: a stored checkpoint sets the job's
// maas_paramserver_checkpoint_timestamp_seconds to when it was stored.
func TestCheckpointMetric(t *testing.T) {
	s := testcluster.StartNATS(t)
	reg := prometheus.NewPedanticRegistry()
	cfg := paramserver.DefaultConfig()
	cfg.Registerer, cfg.Checkpointer = reg, &paramserver.ObjectStoreCheckpointer{NC: testcluster.Connect(t, s)}
	ps := paramserver.New(testcluster.Connect(t, s), cfg)
	a := paramserver.Assignment{Job: "j", Ranges: []wire.Range{{Lo: 0, Hi: 10}}, ChunkFloats: 4, Epoch: 1, Members: 1,
		Optimizer: nn.OptimizerSpec{Type: "sgd", LR: 1}, StepsPerEpoch: 10, TotalSteps: 10, MaxBadSteps: 3}
	if err := ps.Serve(a, make([]float32, 10), nil); err != nil {
		t.Fatal(err)
	}
	job := map[string]string{"maas_job": "j"}
	if _, ok := testcluster.MetricValue(reg, "maas_paramserver_checkpoint_timestamp_seconds", job); ok {
		t.Fatal("a checkpoint time before any checkpoint")
	}
	before := float64(time.Now().Unix())
	if err := ps.Checkpoint("j"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if v, ok := testcluster.MetricValue(reg, "maas_paramserver_checkpoint_timestamp_seconds", job); ok {
			if v < before || v > float64(time.Now().Unix())+1 {
				t.Fatalf("checkpoint time %v, want between %v and now", v, before)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint time after a stored checkpoint")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
