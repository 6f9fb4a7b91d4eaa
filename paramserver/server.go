package paramserver

import (
	"errors"
	"fmt"
	"slices"
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
	// GradSubject(job, server, id) is taken only for id's own rank, or
	// for the ranks id aggregates.
	MemberIDs []string
	// Groups, when set, is each rank's host aggregator (see
	// wire.Assignment): it may push the sum of its host's ranks.
	Groups    []int
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
	// ParamEnc, when set, fans θ out as its change since the last step's
	// fan-out in this encoding (see publishLocked); LastStep (when set)
	// is the job's last θ, which fans out whole.
	ParamEnc wire.Encoding
	LastStep int64
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
	if a.Groups != nil {
		if len(a.Groups) != a.Members {
			return fmt.Errorf("%w: %d host groups for %d members", ErrAssignment, len(a.Groups), a.Members)
		}
		for r, g := range a.Groups {
			if g < 0 || g > r || a.Groups[g] != g {
				return fmt.Errorf("%w: rank %d's aggregator %d is not the lowest rank of its host", ErrAssignment, r, g)
			}
		}
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

	grads [][]float32 // per pushing rank, the gradient for rng (its own, or its host's mean)
	wts   [][]int     // [rank][chunk]: the samples behind grads[rank]'s chunk
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
	// shadow, with a.ParamEnc, is θ as the members hold it: the last
	// whole θ fanned out plus every change fanned out since, each as it
	// decodes. Pulls get it whole.
	shadow  []float32
	barrier *time.Timer
	// firstPush is when the current step's first gradient chunk came.
	firstPush time.Time
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
	s.metrics.epoch.WithLabelValues(a.Job).Set(float64(a.Epoch))
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
		js.wts = make([][]int, k)
		js.ns = make([]int, k)
		js.have = make([][]bool, k)
		for r := range js.grads {
			js.grads[r] = make([]float32, js.rng.Len())
			js.wts[r] = make([]int, len(js.chunks))
			js.have[r] = make([]bool, len(js.chunks))
		}
	}
	for r := range js.have {
		clear(js.have[r])
		clear(js.wts[r])
		js.ns[r] = 0
	}
	js.count = 0
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
	s.metrics.epoch.WithLabelValues(a.Job).Set(float64(a.Epoch))
	js.resetPartials()
	s.cfg.Logger.Info("membership changed", zap.String("job", a.Job), zap.Uint64("epoch", a.Epoch),
		zap.Int("members", a.Members), zap.Int64("from_step", a.FromStep))
	return s.publishLocked(js, false)
}
