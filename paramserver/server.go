package paramserver

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/member"
	"github.com/maas-ml/maas/internal/wire"
	"github.com/maas-ml/maas/nn"
)

// Errors returned by this package.
var (
	// ErrAssignment: an assignment that cannot be served.
	ErrAssignment = errors.New("paramserver: invalid assignment")
	// ErrUnknownJob: no job of that id is served here.
	ErrUnknownJob = errors.New("paramserver: unknown job")
)

// Assignment is what a server needs to serve one job's key range during one
// membership epoch.
type Assignment struct {
	Job    string
	Server int          // index of this server's range in Ranges
	Ranges []wire.Range // every server's range, covering [0, N)
	// ChunkFloats is the chunk size (default wire.DefaultChunkFloats).
	ChunkFloats int
	Epoch       uint64 // membership epoch
	Members     int    // ranks 0..Members−1 push every step
	// MemberIDs, when set, are the ranks' worker ids: a push to
	// GradSubject(job, server, id) is taken only for id's own rank.
	MemberIDs []string
	FromStep  int64 // the first step of this epoch
	Optimizer nn.OptimizerSpec
	Schedule  nn.ScheduleSpec
	// StepsPerEpoch and TotalSteps feed the learning-rate schedule.
	StepsPerEpoch, TotalSteps int
	// MaxBadSteps is how many non-finite steps are skipped before the
	// server reports the job failed (default 3).
	MaxBadSteps int
	// BarrierTimeout overrides the server's for this job when positive.
	BarrierTimeout time.Duration
	// CheckpointEvery stores a checkpoint whenever θ_step has step a
	// multiple of it (0: never).
	CheckpointEvery int
}

func (a *Assignment) validate() error {
	switch {
	case !wire.ValidJobID(a.Job):
		return fmt.Errorf("%w: job id %q", ErrAssignment, a.Job)
	case a.Server < 0 || a.Server >= len(a.Ranges):
		return fmt.Errorf("%w: server %d of %d ranges", ErrAssignment, a.Server, len(a.Ranges))
	case a.Members <= 0:
		return fmt.Errorf("%w: %d members", ErrAssignment, a.Members)
	case a.Optimizer.ClipNorm > 0 && len(a.Ranges) > 1:
		return fmt.Errorf("%w: optimizer.clip_norm needs the global gradient norm, which one of several servers does not have; use one parameter server", ErrAssignment)
	case a.StepsPerEpoch <= 0 || a.TotalSteps <= 0:
		return fmt.Errorf("%w: %d steps per epoch, %d in all", ErrAssignment, a.StepsPerEpoch, a.TotalSteps)
	}
	next := 0
	for i, r := range a.Ranges {
		if r.Lo != next || r.Hi < r.Lo {
			return fmt.Errorf("%w: range %d is %v, want it to start at %d", ErrAssignment, i, r, next)
		}
		next = r.Hi
	}
	if a.ChunkFloats == 0 {
		a.ChunkFloats = wire.DefaultChunkFloats
	}
	if a.MaxBadSteps == 0 {
		a.MaxBadSteps = 3
	}
	return a.Optimizer.Validate()
}

// Config configures a server.
type Config struct {
	// BarrierTimeout bounds how long a step waits for its last push before
	// the missing ranks are reported to the coordinator.
	BarrierTimeout time.Duration
	Logger         *zap.Logger
	// Checkpointer stores checkpoints; nil disables them.
	Checkpointer Checkpointer
	// ID is the member id the server's reports to the coordinator go out
	// as (default: member.DefaultID; NewAgent sets its own).
	ID string
	// Registerer gets the server's metrics (nil: not exported).
	Registerer prometheus.Registerer
}

// DefaultConfig has a 30 s barrier timeout.
func DefaultConfig() Config { return Config{BarrierTimeout: 30 * time.Second, Logger: zap.NewNop()} }

// Server serves key ranges of jobs over NATS.
type Server struct {
	nc      *nats.Conn
	cfg     Config
	metrics *metrics

	mu   sync.Mutex // guards jobs and every jobState, reconnects and reconnectedAt
	jobs map[string]*jobState
	// reconnects is the connection's reconnection count when a barrier was
	// last armed; reconnectedAt when that count was first seen to change.
	reconnects    uint64
	reconnectedAt time.Time
}

// Stats counts what a job's server did.
type Stats struct {
	Step       int64 // the step being aggregated
	Completed  int64 // steps applied
	BadSteps   int64 // steps skipped for a non-finite gradient
	Duplicates int64 // pushes acknowledged and ignored
	Rejected   int64 // pushes refused (stale, future, other epoch, malformed)
	Missing    int64 // barrier timeouts reported
}

type jobState struct {
	a      Assignment
	rng    wire.Range
	chunks []wire.Range // absolute ranges of the chunks of rng
	theta  []float32    // θ_step for rng
	opt    nn.Optimizer
	step   int64

	grads [][]float32 // per rank, the gradient for rng
	ns    []int       // per rank, its sample count this step
	have  [][]bool    // [rank][chunk]
	count int
	sum   []float32

	// The state before the last step, kept so that the step can be undone
	// when a member is lost after this range completed it but before
	// every range did (see Reconfigure).
	prev struct {
		ok      bool
		theta   []float32
		opt     map[string][]float32
		optStep int64
		bad     bool // the step was skipped as non-finite
	}

	current [][]byte // the encoded ParamChunks of θ_step, for pulls
	barrier *time.Timer
	// fenced: the coordinator is replacing the membership epoch (see
	// Fence); fence lifts it if no new epoch comes.
	fenced bool
	fence  *time.Timer
	subs   []*nats.Subscription
	stats  Stats
	failed bool
}

// New returns a server on connection nc.
func New(nc *nats.Conn, cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.BarrierTimeout <= 0 {
		cfg.BarrierTimeout = DefaultConfig().BarrierTimeout
	}
	if cfg.ID == "" {
		cfg.ID = member.DefaultID("ps")
	}
	return &Server{nc: nc, cfg: cfg, metrics: newMetrics(cfg.Registerer), jobs: map[string]*jobState{}, reconnects: nc.Stats().Reconnects}
}

// Serve starts serving a's range of job a.Job from theta (θ_FromStep for
// the range, copied) and opt (the optimizer state for the range, or nil for
// a fresh one). It publishes θ_FromStep so members can start.
func (s *Server) Serve(a Assignment, theta []float32, opt nn.Optimizer) error {
	if err := a.validate(); err != nil {
		return err
	}
	rng := a.Ranges[a.Server]
	if len(theta) != rng.Len() {
		return fmt.Errorf("%w: %d initial parameters for range %v", ErrAssignment, len(theta), rng)
	}
	if opt == nil {
		var err error
		if opt, err = nn.NewOptimizer(a.Optimizer, rng.Len()); err != nil {
			return err
		}
	}
	js := &jobState{a: a, rng: rng, chunks: wire.Chunks(rng, a.ChunkFloats), theta: append([]float32(nil), theta...),
		opt: opt, step: a.FromStep, sum: make([]float32, rng.Len())}
	js.resetPartials()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.jobs[a.Job]; dup {
		return fmt.Errorf("%w: job %s is already served here", ErrAssignment, a.Job)
	}
	gs, err := s.nc.Subscribe(wire.GradSubjects(a.Job, a.Server), s.onGrad)
	if err != nil {
		return err
	}
	ps, err := s.nc.Subscribe(wire.PullSubject(a.Job, a.Server), s.onPull)
	if err != nil {
		gs.Unsubscribe()
		return err
	}
	js.subs = []*nats.Subscription{gs, ps}
	s.jobs[a.Job] = js
	return s.publishLocked(js, false)
}

// Checkpoint stores a checkpoint of job's range now (θ_step, optimizer
// state and step count), in the background.
func (s *Server) Checkpoint(job string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	js, ok := s.jobs[job]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownJob, job)
	}
	s.checkpointLocked(js)
	return nil
}

// Stop stops serving job and returns its final parameters for the range.
func (s *Server) Stop(job string) ([]float32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	js, ok := s.jobs[job]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownJob, job)
	}
	for _, sub := range js.subs {
		sub.Unsubscribe()
	}
	if js.barrier != nil {
		js.barrier.Stop()
	}
	js.unfenceLocked()
	delete(s.jobs, job)
	return js.theta, nil
}

// Fence stops job's range from completing steps of membership epoch while
// the coordinator replaces that epoch, and returns the step whose θ the
// range holds: with every range fenced, the lowest such step is where the
// next epoch can start (see Reconfigure). Pushes are refused meanwhile as
// of a changed epoch, so their workers wait for their next assignment. The
// fence lifts after hold if no new epoch comes (the coordinator lost its
// leadership, say); fencing again extends it.
func (s *Server) Fence(job string, epoch uint64, hold time.Duration) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	js, ok := s.jobs[job]
	switch {
	case !ok:
		return 0, fmt.Errorf("%w: %s", ErrUnknownJob, job)
	case js.a.Epoch != epoch:
		return 0, fmt.Errorf("%w: fence of membership epoch %d, the range is in %d", ErrAssignment, epoch, js.a.Epoch)
	}
	if js.barrier != nil {
		js.barrier.Stop()
	}
	if js.fence != nil {
		js.fence.Stop()
	}
	js.fenced = true
	js.fence = time.AfterFunc(hold, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.jobs[job] != js || !js.fenced || js.a.Epoch != epoch {
			return
		}
		js.fenced = false
		s.cfg.Logger.Warn("fence lifted: no new membership epoch came", zap.String("job", job), zap.Uint64("epoch", epoch))
		if js.count > 0 {
			s.armBarrierLocked(js, 0)
		}
	})
	s.cfg.Logger.Info("fenced for a membership change", zap.String("job", job), zap.Uint64("epoch", epoch), zap.Int64("step", js.step))
	return js.step, nil
}

// gradFor reports whether subject is a gradient push to js's range (from
// any worker).
func gradFor(subject string, js *jobState) bool {
	prefix := wire.GradSubjects(js.a.Job, js.a.Server)
	prefix = prefix[:len(prefix)-1] // without the final "*"
	return strings.HasPrefix(subject, prefix) && !strings.Contains(subject[len(prefix):], ".") && len(subject) > len(prefix)
}

// unfenceLocked drops a fence (a new epoch came, or the job ends).
func (js *jobState) unfenceLocked() {
	if js.fence != nil {
		js.fence.Stop()
	}
	js.fenced = false
}

// Stats returns the job's counters.
func (s *Server) Stats(job string) (Stats, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	js, ok := s.jobs[job]
	if !ok {
		return Stats{}, false
	}
	st := js.stats
	st.Step = js.step
	return st, true
}

func (js *jobState) resetPartials() {
	k := js.a.Members
	if len(js.grads) != k {
		js.grads = make([][]float32, k)
		js.ns = make([]int, k)
		js.have = make([][]bool, k)
		for r := range js.grads {
			js.grads[r] = make([]float32, js.rng.Len())
			js.have[r] = make([]bool, len(js.chunks))
		}
	}
	for r := range js.have {
		clear(js.have[r])
		js.ns[r] = 0
	}
	js.count = 0
}

func (s *Server) respond(m *nats.Msg, code wire.AckCode, reason string) {
	if m.Reply == "" {
		return
	}
	b, err := wire.Encode(&wire.Ack{V: wire.Version, Code: code, Reason: reason})
	if err == nil {
		m.Respond(b)
	}
}

// onGrad takes one pushed gradient chunk.
func (s *Server) onGrad(m *nats.Msg) {
	var g wire.GradChunk
	if err := wire.Decode(m.Data, &g); err != nil {
		s.mu.Lock()
		for _, js := range s.jobs { // count it against the job this subject belongs to
			if gradFor(m.Subject, js) {
				js.stats.Rejected++
			}
		}
		s.mu.Unlock()
		s.metrics.refused.WithLabelValues(refusedMalformed).Inc()
		s.respond(m, wire.AckRejected, err.Error())
		return
	}
	code, reason := s.takeGrad(m.Subject, &g)
	s.respond(m, code, reason)
}

func (s *Server) takeGrad(subject string, g *wire.GradChunk) (wire.AckCode, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	js, ok := s.jobs[g.Job]
	if !ok || !gradFor(subject, js) {
		for _, other := range s.jobs {
			if gradFor(subject, other) {
				other.stats.Rejected++
			}
		}
		s.metrics.refused.WithLabelValues(refusedUnknownJob).Inc()
		return wire.AckRejected, fmt.Sprintf("job %q is not served on this subject", g.Job)
	}
	reject := func(why string, code wire.AckCode, format string, args ...any) (wire.AckCode, string) {
		js.stats.Rejected++
		s.metrics.refused.WithLabelValues(why).Inc()
		return code, fmt.Sprintf(format, args...)
	}
	from := wire.MemberOf(subject)
	switch {
	case js.failed:
		return reject(refusedFailed, wire.AckRejected, "job failed")
	case g.Epoch != js.a.Epoch:
		return reject(refusedEpoch, wire.AckEpoch, "membership epoch %d, the server is in %d", g.Epoch, js.a.Epoch)
	case len(js.a.MemberIDs) == js.a.Members && !slices.Contains(js.a.MemberIDs, from):
		// A push for the server's epoch from a worker outside it: a
		// stranger, or another job's worker pushing under its own id.
		s.cfg.Logger.Warn("refused a gradient push from a worker outside the job's membership epoch",
			zap.String("job", js.a.Job), zap.String("worker", from), zap.Uint64("epoch", js.a.Epoch))
		return reject(refusedNotMember, wire.AckRejected, "worker %s is not a member of job %s's membership epoch %d", from, js.a.Job, js.a.Epoch)
	case js.fenced:
		return reject(refusedEpoch, wire.AckEpoch, "membership epoch %d is being replaced", js.a.Epoch)
	case g.Step < js.step:
		return reject(refusedStale, wire.AckStale, "step %d is done; the server is at step %d", g.Step, js.step)
	case g.Step > js.step:
		return reject(refusedFuture, wire.AckFuture, "step %d is ahead of the server's step %d", g.Step, js.step)
	case g.Rank < 0 || g.Rank >= js.a.Members:
		return reject(refusedRank, wire.AckRejected, "rank %d is not a member (0..%d)", g.Rank, js.a.Members-1)
	case len(js.a.MemberIDs) == js.a.Members && from != js.a.MemberIDs[g.Rank]:
		s.cfg.Logger.Warn("refused a gradient push as another worker's rank",
			zap.String("job", js.a.Job), zap.String("worker", from), zap.Int("rank", g.Rank), zap.String("rank_worker", js.a.MemberIDs[g.Rank]))
		return reject(refusedOtherRank, wire.AckRejected, "rank %d is worker %s's; this push came as %s", g.Rank, js.a.MemberIDs[g.Rank], from)
	case g.Chunk < 0 || g.Chunk >= len(js.chunks):
		return reject(refusedRank, wire.AckRejected, "chunk %d out of 0..%d", g.Chunk, len(js.chunks)-1)
	case g.N < 0:
		return reject(refusedRank, wire.AckRejected, "negative sample count %d", g.N)
	}
	if js.have[g.Rank][g.Chunk] {
		js.stats.Duplicates++
		return wire.AckDuplicate, ""
	}
	c := js.chunks[g.Chunk]
	dst := js.grads[g.Rank][c.Lo-js.rng.Lo : c.Hi-js.rng.Lo]
	if err := wire.Floats(dst, g.Data); err != nil {
		return reject(refusedMalformed, wire.AckRejected, "chunk %d: %v", g.Chunk, err)
	}
	if js.count > 0 && js.ns[g.Rank] != g.N && js.rankStarted(g.Rank) {
		return reject(refusedRank, wire.AckRejected, "rank %d sent %d samples in one chunk and %d in another", g.Rank, g.N, js.ns[g.Rank])
	}
	js.ns[g.Rank] = g.N
	js.have[g.Rank][g.Chunk] = true
	js.count++
	if js.count == 1 {
		s.armBarrierLocked(js, 0)
	}
	if js.count == js.a.Members*len(js.chunks) {
		s.completeLocked(js)
	}
	return wire.AckOK, ""
}

func (js *jobState) rankStarted(rank int) bool {
	for _, h := range js.have[rank] {
		if h {
			return true
		}
	}
	return false
}

// armBarrierLocked starts the barrier timer of the current step.
func (s *Server) armBarrierLocked(js *jobState, extra time.Duration) {
	step, job := js.step, js.a.Job
	if js.barrier != nil {
		js.barrier.Stop()
	}
	timeout := s.cfg.BarrierTimeout
	if js.a.BarrierTimeout > 0 {
		timeout = js.a.BarrierTimeout
	}
	reconnects := s.nc.Stats().Reconnects
	if reconnects != s.reconnects {
		s.reconnects, s.reconnectedAt = reconnects, time.Now()
	}
	if extra == 0 && time.Since(s.reconnectedAt) < member.ReconnectGrace {
		// NATS came back moments ago, and this step began after it (a
		// faster rank's push armed it): the other ranks may still be
		// reconnecting, or fetching the θ they missed.
		extra = member.ReconnectGrace
	}
	timeout += extra
	js.barrier = time.AfterFunc(timeout, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		cur, ok := s.jobs[job]
		if !ok || cur != js || js.step != step {
			return
		}
		if !s.nc.IsConnected() || s.nc.Stats().Reconnects != reconnects {
			// NATS was away: the ranks could not push. The wait starts
			// over, with time for the workers to reconnect too; an outage
			// longer than this bound pauses the job at the coordinator
			// instead of dropping its workers.
			s.armBarrierLocked(js, member.ReconnectGrace)
			return
		}
		var missing []int
		for r, have := range js.have {
			for _, h := range have {
				if !h {
					missing = append(missing, r)
					break
				}
			}
		}
		js.stats.Missing++
		s.cfg.Logger.Warn("barrier timeout", zap.String("job", job), zap.Int64("step", step), zap.Ints("missing", missing))
		s.report(js, "missing", missing, fmt.Sprintf("step %d waited %v for ranks %v", step, timeout, missing))
	})
}

// completeLocked applies step js.step: the weighted sum in rank order, the
// finiteness check, the optimizer, and the publication of θ_{step+1}.
func (s *Server) completeLocked(js *jobState) {
	if js.barrier != nil {
		js.barrier.Stop()
	}
	total := 0
	for _, n := range js.ns {
		total += n
	}
	clear(js.sum)
	if total > 0 {
		for r, g := range js.grads { // rank order: deterministic
			w := float32(float64(js.ns[r]) / float64(total))
			if w == 0 {
				continue
			}
			sum := js.sum[:len(g)]
			for i, v := range g {
				sum[i] += w * v
			}
		}
	}
	skipped := !finite(js.sum)
	js.keepPrev(skipped)
	if skipped {
		js.stats.BadSteps++
		s.cfg.Logger.Warn("non-finite gradient: step skipped", zap.String("job", js.a.Job), zap.Int64("step", js.step))
		s.report(js, "bad_step", nil, fmt.Sprintf("step %d: non-finite gradient, skipped", js.step))
		if js.stats.BadSteps > int64(js.a.MaxBadSteps) {
			js.failed = true
			s.report(js, "failed", nil, fmt.Sprintf("%d steps had non-finite gradients (max_bad_steps %d)", js.stats.BadSteps, js.a.MaxBadSteps))
		}
	} else {
		a := js.a
		if a.Optimizer.ClipNorm > 0 {
			nn.ClipGradNorm(js.sum, a.Optimizer.ClipNorm)
		}
		lr := a.Schedule.LR(a.Optimizer.LR, int(js.step), a.StepsPerEpoch, a.TotalSteps)
		js.opt.Step(js.theta, js.sum, lr)
		js.stats.Completed++
	}
	js.step++
	js.resetPartials()
	if err := s.publishLocked(js, skipped); err != nil {
		s.cfg.Logger.Error("publish parameters", zap.String("job", js.a.Job), zap.Error(err))
	}
	s.report(js, "step", nil, "")
	if every := int64(js.a.CheckpointEvery); every > 0 && js.step%every == 0 && js.step < int64(js.a.TotalSteps) {
		s.checkpointLocked(js)
	}
}

// keepPrev copies θ_step and the optimizer state before the step is
// applied.
func (js *jobState) keepPrev(skipped bool) {
	p := &js.prev
	p.theta = append(p.theta[:0], js.theta...)
	state, step := js.opt.State()
	if p.opt == nil {
		p.opt = map[string][]float32{}
	}
	for name, v := range state {
		p.opt[name] = append(p.opt[name][:0], v...)
	}
	p.optStep, p.bad, p.ok = step, skipped, true
}

// undoLocked restores the state kept before the last step.
func (js *jobState) undoLocked() {
	p := &js.prev
	copy(js.theta, p.theta)
	state, _ := js.opt.State()
	for name, v := range state {
		if old, ok := p.opt[name]; ok {
			copy(v, old)
		} else {
			clear(v)
		}
	}
	js.opt.SetStep(p.optStep)
	if p.bad {
		js.stats.BadSteps--
	} else {
		js.stats.Completed--
	}
	js.step--
	p.ok = false
}

// Reconfigure moves job to a new membership epoch a (a later Epoch, the
// same server index and ranges): the partial sums of the step in progress
// are dropped, and when a.FromStep is the step this range completed last
// (a member was lost after this range applied it but before every range
// did) that step is undone. θ_FromStep is then published for the new
// members, who compute from a.FromStep on.
func (s *Server) Reconfigure(a Assignment) error {
	if err := a.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	js, ok := s.jobs[a.Job]
	switch {
	case !ok:
		return fmt.Errorf("%w: %s", ErrUnknownJob, a.Job)
	case a.Epoch <= js.a.Epoch:
		return fmt.Errorf("%w: membership epoch %d is not after %d", ErrAssignment, a.Epoch, js.a.Epoch)
	case a.Server != js.a.Server || !slices.Equal(a.Ranges, js.a.Ranges):
		return fmt.Errorf("%w: epoch %d changes the servers' ranges, which needs a checkpoint restore", ErrAssignment, a.Epoch)
	}
	switch {
	case a.FromStep == js.step:
	case a.FromStep == js.step-1 && js.prev.ok:
		js.undoLocked()
	default:
		return fmt.Errorf("%w: epoch %d starts at step %d but this range holds θ_%d: only the last step can be undone", ErrAssignment, a.Epoch, a.FromStep, js.step)
	}
	if js.barrier != nil {
		js.barrier.Stop()
	}
	js.unfenceLocked()
	js.a = a
	js.resetPartials()
	s.cfg.Logger.Info("membership changed", zap.String("job", a.Job), zap.Uint64("epoch", a.Epoch),
		zap.Int("members", a.Members), zap.Int64("from_step", a.FromStep))
	return s.publishLocked(js, false)
}

func finite(v []float32) bool {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return true
}

// publishLocked encodes θ_step chunk by chunk, keeps the messages for pulls
// and publishes each once on the job's parameter subject.
func (s *Server) publishLocked(js *jobState, skipped bool) error {
	js.current = js.current[:0]
	for i, c := range js.chunks {
		b, err := wire.Encode(&wire.ParamChunk{V: wire.Version, Job: js.a.Job, Epoch: js.a.Epoch, Step: js.step,
			Server: js.a.Server, Chunk: i, Offset: c.Lo, Skipped: skipped,
			Data: wire.AppendFloats(nil, js.theta[c.Lo-js.rng.Lo:c.Hi-js.rng.Lo])})
		if err != nil {
			return err
		}
		js.current = append(js.current, b)
		if err := s.nc.Publish(wire.ParamSubject(js.a.Job), b); err != nil {
			return err
		}
	}
	return nil
}

// onPull answers a request for a chunk of the current parameters.
func (s *Server) onPull(m *nats.Msg) {
	var req wire.PullRequest
	reply := func(code wire.AckCode, reason string, chunk []byte) {
		if chunk != nil {
			m.Respond(chunk)
			return
		}
		b, err := wire.Encode(&wire.Ack{V: wire.Version, Code: code, Reason: reason})
		if err == nil {
			m.RespondMsg(&nats.Msg{Data: b, Header: nats.Header{wire.HeaderAck: []string{string(code)}}})
		}
	}
	if err := wire.Decode(m.Data, &req); err != nil {
		reply(wire.AckRejected, err.Error(), nil)
		return
	}
	s.mu.Lock()
	js, ok := s.jobs[req.Job]
	var code wire.AckCode
	var reason string
	var chunk []byte
	switch {
	case !ok:
		code, reason = wire.AckRejected, fmt.Sprintf("job %q is not served here", req.Job)
	case req.Chunk < 0 || req.Chunk >= len(js.current):
		code, reason = wire.AckRejected, fmt.Sprintf("chunk %d out of range", req.Chunk)
	case req.Step < js.step:
		code, reason = wire.AckStale, fmt.Sprintf("θ_%d is gone; the server holds θ_%d", req.Step, js.step)
	case req.Step > js.step:
		code, reason = wire.AckFuture, fmt.Sprintf("θ_%d is not ready; the server holds θ_%d", req.Step, js.step)
	default:
		chunk = js.current[req.Chunk]
	}
	s.mu.Unlock()
	reply(code, reason, chunk)
}

// report tells the coordinator what happened (a plain message).
func (s *Server) report(js *jobState, kind string, missing []int, reason string) {
	b, err := wire.Encode(&wire.Report{V: wire.Version, ID: s.cfg.ID, Job: js.a.Job, Server: js.a.Server, Kind: kind,
		Step: js.step, Epoch: js.a.Epoch, Missing: missing, Reason: reason})
	if err == nil {
		s.nc.Publish(wire.ReportSubject(s.cfg.ID), b)
	}
}
