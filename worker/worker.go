package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/member"
	"github.com/maas-ml/maas/internal/train"
	"github.com/maas-ml/maas/internal/wire"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/tensor"
)

// Errors returned by Run.
var (
	// ErrAssignment: an assignment that cannot run.
	ErrAssignment = errors.New("worker: invalid assignment")
	// ErrEpochChanged: a server moved to another membership epoch; the
	// worker must take its new assignment.
	ErrEpochChanged = errors.New("worker: membership epoch changed")
	// ErrTimeout: a push or pull was not answered within its bound and
	// retries.
	ErrTimeout = errors.New("worker: no answer from a parameter server")
	// ErrRefused: a server refused a push for a reason retrying cannot fix.
	ErrRefused = errors.New("worker: push refused")
)

// Assignment is one member's share of a job during one membership epoch.
type Assignment struct {
	Job string
	// ID is this worker's id, the last token of its gradient subjects
	// (default "rank-<Rank>").
	ID      string
	Spec    *jobspec.Spec
	Epoch   uint64 // membership epoch
	Rank    int
	Members int
	// MemberIDs are the workers' ids by rank, and Groups, when set (a job
	// aggregating per host), each rank's host aggregator (see
	// wire.Assignment).
	MemberIDs []string
	Groups    []int
	// Ranges are the servers' key ranges; server s owns Ranges[s].
	Ranges      []wire.Range
	ChunkFloats int
	// FromStep is the first step to compute; TotalSteps ends the job.
	FromStep, TotalSteps int64
	// StepTimeout, when set, is the job's bound on a step's waits
	// (replacing Config.StepTimeout).
	StepTimeout time.Duration
}

// selfID is the worker's id in its subjects.
func (a Assignment) selfID() string {
	if a.ID == "" {
		return fmt.Sprintf("rank-%d", a.Rank)
	}
	return a.ID
}

// Config configures a worker.
type Config struct {
	Backend tensor.Backend
	// PushTimeout bounds one push's wait for its ack; a push is retried
	// PushRetries times.
	PushTimeout time.Duration
	PushRetries int
	// ParamWait is how long to wait for θ_{t+1} to be fanned out before
	// pulling the missing chunks; PullTimeout bounds each pull.
	ParamWait   time.Duration
	PullTimeout time.Duration
	// AggregateWait is how long a host aggregator waits for the host's
	// other workers' chunks after its own gradient is ready, before it
	// pushes without the missing ones (who then push their own).
	AggregateWait time.Duration
	// StepTimeout bounds the whole wait for θ_{t+1} (the servers' barrier
	// timeout plus slack), counted while NATS is connected (see
	// member.Deadline).
	StepTimeout time.Duration
	Logger      *zap.Logger
	// CacheDir keeps the shards of pushed datasets (dataset.name) fetched
	// from the Object Store; empty means datastore.DefaultCacheDir().
	CacheDir string
	// OnBatch, when set, sees the sample indices of every step this worker
	// computes (a test hook).
	OnBatch func(step int64, idx []int)
	// OnStep, when set, is called after every step with its loss and
	// accuracy on this worker's slice.
	OnStep func(StepInfo)
	// OnEpochEnd, when set, is called after each epoch's last step (0-based
	// epoch, that step) with m holding all of θ after it; the next step
	// waits for it. (With overlap the worker then waits for the whole of
	// θ before that next step.)
	OnEpochEnd func(epoch int, step int64, m *nn.Model)
	// NewDeviceTrainer, when set, makes the DeviceTrainer that computes
	// the steps of a job's model for slices of up to batch samples, in
	// place of the model's Forward and Backward on Backend. It may return
	// nil (and no error) for a model the device does not run; the steps
	// then run on Backend.
	NewDeviceTrainer func(spec nn.ModelSpec, batch int) (DeviceTrainer, error)
	// SyntheticCompute, when not 0, replaces a benchmark job's
	// benchmark.synthetic_compute on this worker (one sample's compute
	// time before dilation): a slower or faster host. Jobs without a
	// benchmark section compute for real regardless.
	SyntheticCompute time.Duration
	// Registerer gets the worker's metrics (nil: not exported).
	Registerer prometheus.Registerer
}

// DeviceTrainer computes a step's gradients on an accelerator that holds
// the model in its own memory (gputrain's Trainer, built without an
// optimizer: the parameter servers update θ).
type DeviceTrainer interface {
	// SetParams copies θ to the device.
	SetParams(params []float32) error
	// Step computes the loss, the rows classified right and the gradients
	// of a batch of n samples.
	Step(x []float32, y []int32, n int) (loss float32, correct int, err error)
	// Grads copies the last Step's gradients into dst.
	Grads(dst []float32) error
	// Close frees the device memory.
	Close() error
}

// StepInfo describes one finished step on one worker. With overlap
// (the job's default) Compute, Wait and Push add up to the step, and the
// pushes of the buckets that backward finished early ran beside the
// compute.
type StepInfo struct {
	Step    int64
	Loss    float32
	Correct int
	N       int
	Compute time.Duration // forward and backward, without the waits for θ
	// Push is the time after backward until every bucket was
	// acknowledged: the pushing the step did not hide.
	Push time.Duration
	// Wait is the time waiting for θ: for θ_t during the step's forward
	// (overlap), or for θ_{t+1} after the push (without).
	Wait time.Duration
	// Overlapped is how long the pushes ran beside compute: from the
	// first bucket's push to the end of backward.
	Overlapped time.Duration
}

// DefaultConfig returns bounded waits suited to a LAN.
func DefaultConfig() Config {
	return Config{PushTimeout: 5 * time.Second, PushRetries: 5, ParamWait: 2 * time.Second,
		PullTimeout: 5 * time.Second, StepTimeout: 60 * time.Second, AggregateWait: 5 * time.Second, Logger: zap.NewNop()}
}

// chunkRef is one chunk of the flat vector and the server that owns it.
type chunkRef struct {
	server, index int
	rng           wire.Range
}

// Worker computes gradients for one job assignment at a time.
type Worker struct {
	nc      *nats.Conn
	cfg     Config
	metrics *metrics
	// job is the job Run works on: the maas_job of its byte counts (set
	// before Run starts its pushes).
	job string
}

// New returns a worker on connection nc.
func New(nc *nats.Conn, cfg Config) *Worker {
	d := DefaultConfig()
	if cfg.Backend == nil {
		cfg.Backend = tensor.Default()
	}
	if cfg.PushTimeout <= 0 {
		cfg.PushTimeout = d.PushTimeout
	}
	if cfg.PushRetries <= 0 {
		cfg.PushRetries = d.PushRetries
	}
	if cfg.ParamWait <= 0 {
		cfg.ParamWait = d.ParamWait
	}
	if cfg.PullTimeout <= 0 {
		cfg.PullTimeout = d.PullTimeout
	}
	if cfg.StepTimeout <= 0 {
		cfg.StepTimeout = d.StepTimeout
	}
	if cfg.AggregateWait <= 0 {
		cfg.AggregateWait = d.AggregateWait
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &Worker{nc: nc, cfg: cfg, metrics: newMetrics(cfg.Registerer)}
}

// paramInbox collects fanned-out parameter chunks by step.
type paramInbox struct {
	mu     sync.Mutex // guards chunks and wake
	chunks map[int64]map[int]*wire.ParamChunk
	wake   chan struct{}
}

func (p *paramInbox) put(pc *wire.ParamChunk, idx int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.chunks[pc.Step] == nil {
		p.chunks[pc.Step] = map[int]*wire.ParamChunk{}
	}
	p.chunks[pc.Step][idx] = pc
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run computes steps a.FromStep … a.TotalSteps−1 on data and returns the
// model holding θ_TotalSteps.
func (w *Worker) Run(ctx context.Context, a Assignment, data train.Source) (*nn.Model, error) {
	spec := a.Spec
	if a.Rank < 0 || a.Rank >= a.Members || len(a.Ranges) == 0 || spec == nil {
		return nil, fmt.Errorf("%w: rank %d of %d, %d servers", ErrAssignment, a.Rank, a.Members, len(a.Ranges))
	}
	m, err := nn.Build(spec.Model, w.cfg.Backend)
	if err != nil {
		return nil, err
	}
	w.job = a.Job
	if a.Ranges[len(a.Ranges)-1].Hi != len(m.Params) {
		return nil, fmt.Errorf("%w: servers cover %d parameters, the model has %d", ErrAssignment, a.Ranges[len(a.Ranges)-1].Hi, len(m.Params))
	}
	if a.ChunkFloats == 0 {
		a.ChunkFloats = wire.DefaultChunkFloats
	}
	var refs []chunkRef
	for s, r := range a.Ranges {
		for i, c := range wire.Chunks(r, a.ChunkFloats) {
			refs = append(refs, chunkRef{server: s, index: i, rng: c})
		}
	}
	key := func(server, idx int) int { return server<<20 | idx }
	inbox := &paramInbox{chunks: map[int64]map[int]*wire.ParamChunk{}, wake: make(chan struct{}, 1)}
	sub, err := w.nc.Subscribe(wire.ParamSubject(a.Job), func(msg *nats.Msg) {
		var pc wire.ParamChunk
		if wire.Decode(msg.Data, &pc) != nil || pc.Job != a.Job {
			return
		}
		inbox.put(&pc, key(pc.Server, pc.Chunk))
	})
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	fb := newFeedback(spec, len(m.Params))
	begin := func(ctx context.Context, t int64, n int) bucketPush {
		return &directPush{w.newStepPush(ctx, a, m.Grads, refs, t, n, fb)}
	}
	if g, ok := groupOf(a); ok {
		if g.leader == a.Rank {
			ag, err := w.startAggregator(a, g, refs)
			if err != nil {
				return nil, err
			}
			defer ag.stop()
			begin = func(ctx context.Context, t int64, n int) bucketPush { return ag.begin(ctx, m.Grads, t, n) }
		} else {
			begin = func(ctx context.Context, t int64, n int) bucketPush {
				return &memberPush{stepPush: w.newStepPush(ctx, a, m.Grads, refs, t, n, fb), g: g}
			}
		}
	}
	st, err := w.newStepper(spec, m, data, a.Members)
	if err != nil {
		return nil, err
	}
	defer st.close()
	// held is the step of θ each chunk of m.Params holds (−1: none yet).
	held := make([]int64, len(refs))
	for i := range held {
		held[i] = -1
	}
	// θ_FromStep: what was fanned out already, the rest pulled; with
	// overlap, the first forward takes it layer by layer.
	params := w.newParamWaiter(a, m, refs, inbox, held, a.FromStep, key)
	if !spec.Overlaps() || a.FromStep == a.TotalSteps {
		if err := params.all(ctx); err != nil {
			return nil, err
		}
	}
	B := spec.BatchSize
	spe := (data.Len() + B - 1) / B
	var perm []int
	permEpoch := -1
	for t := a.FromStep; t < a.TotalSteps; t++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		epoch, i := int(t)/spe, int(t)%spe
		if epoch != permEpoch {
			perm = dataset.Order(perm, data.Len(), spec.ShuffleOn(), spec.Seed, epoch)
			permEpoch = epoch
		}
		batch := perm[i*B : min((i+1)*B, data.Len())]
		lo, hi := len(batch)*a.Rank/a.Members, len(batch)*(a.Rank+1)/a.Members
		idx := batch[lo:hi]
		if w.cfg.OnBatch != nil {
			w.cfg.OnBatch(t, idx)
		}
		info := StepInfo{Step: t, N: len(idx)}
		if err := w.step(ctx, st, params, begin, refs, idx, &info); err != nil {
			return nil, err
		}
		params = w.newParamWaiter(a, m, refs, inbox, held, t+1, key)
		epochEnd := w.cfg.OnEpochEnd != nil && (int(t+1)%spe == 0 || t+1 == a.TotalSteps)
		if !spec.Overlaps() || t+1 == a.TotalSteps || epochEnd {
			start := time.Now()
			if err := params.all(ctx); err != nil {
				return nil, err
			}
			info.Wait += time.Since(start)
		}
		w.metrics.observe(a.Job, a.Epoch, info)
		if w.cfg.OnStep != nil {
			w.cfg.OnStep(info)
		}
		if epochEnd {
			w.cfg.OnEpochEnd(epoch, t, m)
		}
	}
	return m, nil
}

// step computes and pushes step t on θ_t (params). With the job's overlap
// the forward asks for θ_t layer by layer and each bucket of the gradient
// is pushed as soon as backward has finished it; without, θ_t is all in
// already and the buckets are pushed after backward. It returns once
// every bucket is acknowledged.
func (w *Worker) step(ctx context.Context, st *stepper, params *paramWaiter, begin func(context.Context, int64, int) bucketPush,
	refs []chunkRef, idx []int, info *StepInfo) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var waited time.Duration
	var needErr error
	need := func(hi int) error {
		if needErr == nil {
			start := time.Now()
			needErr = params.until(ctx, chunksBelow(refs, hi))
			waited += time.Since(start)
		}
		return needErr
	}
	push := begin(ctx, info.Step, len(idx))
	next := len(refs) // the chunks from next on are pushed
	var first time.Time
	ready := func(lo int) {
		if first.IsZero() {
			first = time.Now()
		}
		for next > 0 && refs[next-1].rng.Lo >= lo {
			next--
			push.ready(next)
		}
	}
	start := time.Now()
	err := st.compute(ctx, idx, info, need, ready)
	if err == nil {
		err = needErr
	}
	end := time.Now()
	info.Compute, info.Wait = end.Sub(start)-waited, waited
	if err != nil {
		return err
	}
	ready(0)
	if err := push.wait(); err != nil {
		return err
	}
	info.Push = time.Since(end)
	info.Overlapped = max(0, end.Sub(first))
	return nil
}

// stepper computes this worker's part of a step: its slice's gradient
// into m.Grads, on the backend, a device, or (a benchmark job) by waiting.
type stepper struct {
	m      *nn.Model
	loss   *nn.SoftmaxCrossEntropy
	data   train.Source
	dev    DeviceTrainer
	x      []float32
	y      []int32
	labels int
	// perSample, when not 0, is a benchmark job's wait for one sample in
	// place of computing it; the gradient pushed is then m.Grads as filled
	// once by fillSynthetic.
	perSample time.Duration
	// overlap: the step runs layer by layer with the model's hooks; costs
	// are each layer's share of a synthetic step.
	overlap bool
	costs   []float64
}

func (w *Worker) newStepper(spec *jobspec.Spec, m *nn.Model, data train.Source, members int) (*stepper, error) {
	out := m.OutShape()
	slice := spec.BatchSize/members + 1
	st := &stepper{m: m, loss: nn.NewSoftmaxCrossEntropy(w.cfg.Backend, out[len(out)-1]), data: data, labels: data.LabelsPerSample(),
		overlap: spec.Overlaps(), costs: m.LayerCosts()}
	if per := spec.SyntheticCompute(); per > 0 {
		if w.cfg.SyntheticCompute > 0 {
			per = spec.Benchmark.Dilate(w.cfg.SyntheticCompute)
		}
		st.perSample = per
		fillSynthetic(m.Grads)
		return st, nil
	}
	if w.cfg.NewDeviceTrainer != nil {
		dev, err := w.cfg.NewDeviceTrainer(spec.Model, slice)
		if err != nil {
			return nil, err
		}
		st.dev = dev
	}
	st.x = make([]float32, slice*data.SampleSize())
	st.y = make([]int32, slice*st.labels)
	return st, nil
}

// compute fills m.Grads with the gradient of the samples idx (their sum's
// mean, as the parameter servers weigh it by len(idx)) and info's loss and
// accuracy. need(hi) returns once Params[:hi] hold the step's θ (with an
// error, the step is lost); ready(lo) says that Grads[lo:] are final.
// Without overlap, on a device or for no samples, all of θ is needed
// first and the gradient is ready at the end (the caller's ready(0)).
func (st *stepper) compute(ctx context.Context, idx []int, info *StepInfo, need func(hi int) error, ready func(lo int)) error {
	n, m := len(idx), st.m
	whole := !st.overlap || st.dev != nil || n == 0
	if whole {
		if err := need(len(m.Params)); err != nil {
			return err
		}
	}
	switch {
	case st.perSample > 0 && whole:
		return sleep(ctx, time.Duration(n)*st.perSample)
	case st.perSample > 0:
		return st.emulate(ctx, time.Duration(n)*st.perSample, need, ready)
	case n == 0:
		m.ZeroGrad() // an empty slice pushes a zero gradient (its weight n_r/B is 0)
		return nil
	}
	if err := st.data.Batch(idx, st.x, st.y); err != nil {
		return err
	}
	xs, ys := st.x[:n*st.data.SampleSize()], st.y[:n*st.labels]
	if st.dev != nil {
		var err error
		info.Loss, info.Correct, err = deviceStep(st.dev, m, xs, ys, n)
		return err
	}
	if !whole {
		m.SetHooks(&nn.StepHooks{ParamsNeeded: func(hi int) { need(hi) }, GradsReady: ready})
		defer m.SetHooks(nil)
	}
	info.Loss, info.Correct = train.Gradient(m, st.loss, xs, ys, n)
	return nil
}

// emulate waits a synthetic step of length d layer by layer: each layer's
// forward its share of d/3 (by LayerCosts) once its parameters are in,
// then each layer's backward twice that, in reverse, its gradient ready
// after it. The waits for θ push the rest of the step back.
func (st *stepper) emulate(ctx context.Context, d time.Duration, need func(hi int) error, ready func(lo int)) error {
	total := 0.0
	for _, c := range st.costs {
		total += c
	}
	share := func(i int) time.Duration { return time.Duration(float64(d) * st.costs[i] / (3 * total)) }
	at := time.Now()
	wait := func() error {
		if d := time.Until(at); d > 0 {
			return sleep(ctx, d)
		}
		return nil
	}
	for i := range st.costs {
		if lo, hi := st.m.LayerSpan(i); hi > lo {
			if err := wait(); err != nil {
				return err
			}
			if err := need(hi); err != nil {
				return err
			}
			at = later(at, time.Now())
		}
		at = at.Add(share(i))
	}
	for i := len(st.costs) - 1; i >= 0; i-- {
		at = at.Add(2 * share(i))
		if lo, hi := st.m.LayerSpan(i); hi > lo {
			if err := wait(); err != nil {
				return err
			}
			ready(lo)
		}
	}
	return wait()
}

// later is the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (st *stepper) close() {
	if st.dev != nil {
		st.dev.Close()
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fillSynthetic fills a benchmark job's gradient: small, finite values
// that depend on the index only, the same on every worker and step.
func fillSynthetic(g []float32) {
	for i := range g {
		h := uint32(i) * 2654435761
		g[i] = (float32(h>>8)/float32(1<<24) - 0.5) * 1e-3
	}
}

// deviceStep computes a step on dev: θ_t (m.Params) up, the step, the
// gradients down into m.Grads for the push.
func deviceStep(dev DeviceTrainer, m *nn.Model, x []float32, y []int32, n int) (float32, int, error) {
	if err := dev.SetParams(m.Params); err != nil {
		return 0, 0, err
	}
	l, correct, err := dev.Step(x, y, n)
	if err != nil {
		return 0, 0, err
	}
	return l, correct, dev.Grads(m.Grads)
}

func (w *Worker) pushOne(ctx context.Context, subject string, msg []byte, ref chunkRef, t int64) error {
	// Retried at least PushRetries times and for StepTimeout: a NATS
	// outage or a restarting server shorter than that costs time, not the
	// step.
	deadline := member.NewDeadline(w.nc, w.cfg.StepTimeout)
	ack, err := w.request(ctx, subject, msg, func(try int) bool { return try <= w.cfg.PushRetries || !deadline.Expired() })
	switch {
	case errors.Is(err, errUnreachable):
		return fmt.Errorf("%w: push of step %d chunk %d to %s: no ack for %v", ErrTimeout, t, ref.index, subject, w.cfg.StepTimeout)
	case err != nil:
		return err
	case ack == nil:
		return fmt.Errorf("%w: step %d chunk %d: malformed acknowledgement", ErrRefused, t, ref.index)
	case ack.Accepted():
		return nil
	case ack.Code == wire.AckStale:
		// The server finished step t: it had every rank's chunk, this
		// one included (an earlier try whose ack was lost).
		return nil
	case ack.Code == wire.AckConflict:
		return errConflict
	case ack.Code == wire.AckEpoch || ack.Code == wire.AckFuture:
		return fmt.Errorf("%w: step %d: %s", ErrEpochChanged, t, ack.Reason)
	default:
		return fmt.Errorf("%w: step %d chunk %d: %s", ErrRefused, t, ref.index, ack.Reason)
	}
}

// countBytes counts n bytes of the data plane in direction for the job
// Run works on.
func (w *Worker) countBytes(direction string, n int) {
	if w.job != "" {
		w.metrics.bytes.WithLabelValues(w.job, direction).Add(float64(n))
	}
}

// request sends msg and returns the decoded answer (nil when it is not an
// Ack), trying again while again(try) holds after a try that got no
// answer (backing off after one that failed at once: no responders, no
// connection); errUnreachable when no try was answered.
func (w *Worker) request(ctx context.Context, subject string, msg []byte, again func(try int) bool) (*wire.Ack, error) {
	for try := 0; again(try); try++ {
		rctx, cancel := context.WithTimeout(ctx, w.cfg.PushTimeout)
		w.countBytes(bytesPushed, len(msg))
		reply, err := w.nc.RequestWithContext(rctx, subject, msg)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			w.cfg.Logger.Debug("request retry", zap.String("subject", subject), zap.Int("try", try), zap.Error(err))
			if !errors.Is(err, context.DeadlineExceeded) {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(min(100*time.Millisecond<<min(try, 5), 2*time.Second)):
				}
			}
			continue
		}
		var ack wire.Ack
		if wire.Decode(reply.Data, &ack) != nil {
			return nil, nil
		}
		return &ack, nil
	}
	return nil, errUnreachable
}
