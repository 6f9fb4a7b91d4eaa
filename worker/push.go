package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/wire"
)

// bucketPush sends one step's gradient bucket by bucket (a bucket is one
// chunk of the flat vector, the unit a parameter server sums), each as
// soon as backward has finished it.
type bucketPush interface {
	// ready says that chunk i (an index into the worker's chunk list) of
	// the gradient is final; it is sent without waiting. Every chunk is
	// made ready once.
	ready(i int)
	// wait returns once every chunk has been acknowledged, with the first
	// error of any.
	wait() error
}

// stepPush has what every push of one step shares.
type stepPush struct {
	ctx   context.Context
	w     *Worker
	a     Assignment
	grads []float32
	refs  []chunkRef
	t     int64
	n     int
	errs  chan error // one result a chunk
	// fb is this worker's error feedback for its own pushes in a lossy
	// encoding (nil otherwise).
	fb *wire.Feedback
}

func (w *Worker) newStepPush(ctx context.Context, a Assignment, grads []float32, refs []chunkRef, t int64, n int, fb *wire.Feedback) stepPush {
	return stepPush{ctx: ctx, w: w, a: a, grads: grads, refs: refs, t: t, n: n, errs: make(chan error, len(refs)), fb: fb}
}

// wait collects one result a chunk.
func (p *stepPush) wait() error {
	var first error
	for range p.refs {
		if err := <-p.errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// directPush pushes each chunk to its parameter server.
type directPush struct{ stepPush }

func (p *directPush) ready(i int) {
	ref := p.refs[i]
	msg, err := encodeOwn(p.a, p.grads, ref, p.t, p.n, p.fb)
	if err != nil {
		p.errs <- err
		return
	}
	go func() {
		p.errs <- p.w.pushOne(p.ctx, wire.GradSubject(p.a.Job, ref.server, p.a.selfID()), msg, ref, p.t)
	}()
}

// encodeOwn is this worker's own push of one chunk, in the job's
// encoding, through its error feedback fb when the encoding is lossy.
func encodeOwn(a Assignment, grads []float32, ref chunkRef, t int64, n int, fb *wire.Feedback) ([]byte, error) {
	return wire.Encode(&wire.GradChunk{V: wire.Version, Job: a.Job, Epoch: a.Epoch, Step: t, Rank: a.Rank, N: n, Chunk: ref.index,
		Data: appendGrad(nil, grads[ref.rng.Lo:ref.rng.Hi], ref.rng.Lo, a.Spec, fb), Enc: a.Spec.Encoding()})
}

// appendGrad encodes the gradient values at [lo, lo+len(g)) of the flat
// vector in spec's encoding: through fb (the sender's error feedback)
// when there is one.
func appendGrad(dst []byte, g []float32, lo int, spec *jobspec.Spec, fb *wire.Feedback) []byte {
	if fb != nil {
		return fb.Append(dst, g, lo)
	}
	return wire.AppendCompressed(dst, g, spec.Encoding(), spec.TopKRatio())
}

// newFeedback is the error feedback of a job's lossy encoding over n
// values, or nil.
func newFeedback(spec *jobspec.Spec, n int) *wire.Feedback {
	if enc := spec.Encoding(); enc.Lossy() {
		return wire.NewFeedback(enc, spec.TopKRatio(), n)
	}
	return nil
}

// pushDirect pushes one chunk of this worker's own gradient to its server.
func (w *Worker) pushDirect(ctx context.Context, a Assignment, grads []float32, ref chunkRef, t int64, n int, fb *wire.Feedback) error {
	msg, err := encodeOwn(a, grads, ref, t, n, fb)
	if err != nil {
		return err
	}
	return w.pushOne(ctx, wire.GradSubject(a.Job, ref.server, a.selfID()), msg, ref, t)
}

// memberPush sends each chunk to the host's aggregator, and pushes to the
// parameter server directly a chunk the aggregator does not take (its
// aggregate left without it) or when the aggregator cannot be reached.
type memberPush struct {
	stepPush
	g hostGroup
}

func (p *memberPush) ready(i int) {
	ref, a, t := p.refs[i], p.a, p.t
	msg, err := wire.Encode(&wire.GradChunk{V: wire.Version, Job: a.Job, Epoch: a.Epoch, Step: t, Rank: a.Rank, N: p.n, Chunk: i,
		Data: wire.AppendFloats(nil, p.grads[ref.rng.Lo:ref.rng.Hi])})
	if err != nil {
		p.errs <- err
		return
	}
	subject := wire.AggSubject(a.Job, p.g.leaderID, a.selfID())
	go func() {
		w := p.w
		ack, err := w.request(p.ctx, subject, msg, func(try int) bool { return try <= w.cfg.PushRetries })
		var code wire.AckCode
		if ack != nil {
			code = ack.Code
		}
		switch {
		case err == nil && (code == wire.AckOK || code == wire.AckDuplicate || code == wire.AckStale):
			p.errs <- nil
			return
		case err == nil && code == wire.AckEpoch:
			p.errs <- fmt.Errorf("%w: step %d (host aggregator %s)", ErrEpochChanged, t, p.g.leaderID)
			return
		case err != nil && !errors.Is(err, errUnreachable):
			p.errs <- err
			return
		case err == nil && code != wire.AckDirect:
			p.errs <- fmt.Errorf("%w: step %d chunk %d: the host aggregator answered %s", ErrRefused, t, i, code)
			return
		}
		if err != nil {
			w.cfg.Logger.Warn("host aggregator unreachable: pushing directly", zap.String("aggregator", p.g.leaderID), zap.Int64("step", t))
		}
		p.errs <- w.pushDirect(p.ctx, a, p.grads, ref, t, p.n, p.fb)
	}()
}

// aggPush is a host aggregator's push of one step: each chunk once its own
// part is final and every worker of the host has sent theirs, or, after
// AggregateWait from the moment all of its own gradient is final, with
// those that have.
type aggPush struct {
	stepPush
	ag   *aggregator
	st   *aggStep
	loop chan error // the sending loop's end
}

// begin starts the aggregator's push of step t, n being its own samples.
func (ag *aggregator) begin(ctx context.Context, grads []float32, t int64, n int) *aggPush {
	ag.mu.Lock()
	ag.current = t
	for s := range ag.steps {
		if s < t-1 { // the last step's is kept for its late chunks
			delete(ag.steps, s)
		}
	}
	st := ag.steps[t]
	if st == nil {
		st = newAggStep()
		ag.steps[t] = st
	}
	st.ns[ag.a.Rank] = n
	ag.mu.Unlock()
	p := &aggPush{stepPush: ag.w.newStepPush(ctx, ag.a, grads, ag.refs, t, n, nil), ag: ag, st: st, loop: make(chan error, 1)}
	go func() { p.loop <- p.send() }()
	return p
}

func (p *aggPush) ready(i int) {
	ref, ag := p.refs[i], p.ag
	ag.mu.Lock()
	if p.st.grads[i] == nil {
		p.st.grads[i] = map[int][]float32{}
	}
	p.st.grads[i][ag.a.Rank] = p.grads[ref.rng.Lo:ref.rng.Hi]
	p.st.own++
	ag.mu.Unlock()
	ag.signal()
}

func (p *aggPush) wait() error {
	if err := <-p.loop; err != nil {
		return err
	}
	return p.stepPush.wait()
}

// send pushes each chunk when it can, until all are sent.
func (p *aggPush) send() error {
	ag, st, self := p.ag, p.st, p.ag.a.Rank
	var deadline time.Time // set once all of the own gradient is final
	sent, warned := 0, false
	for sent < len(p.refs) {
		ag.mu.Lock()
		if deadline.IsZero() && st.own == len(p.refs) {
			deadline = time.Now().Add(ag.w.cfg.AggregateWait)
		}
		late := !deadline.IsZero() && !time.Now().Before(deadline)
		for i := range p.refs {
			if _, done := st.sent[i]; done {
				continue
			}
			if _, mine := st.grads[i][self]; !mine {
				continue
			}
			var covers []int
			for _, r := range ag.g.ranks {
				if _, ok := st.grads[i][r]; ok {
					covers = append(covers, r)
				}
			}
			if len(covers) < len(ag.g.ranks) && !late {
				continue
			}
			st.sent[i] = covers
			parts, ns := make([][]float32, len(covers)), make([]int, len(covers))
			for k, r := range covers {
				parts[k], ns[k] = st.grads[i][r], st.ns[r]
			}
			sent++
			go func() { p.errs <- ag.pushChunk(p.ctx, i, p.t, covers, ns, parts) }()
		}
		ag.mu.Unlock()
		if sent == len(p.refs) {
			break
		}
		if late && !warned {
			warned = true
			ag.w.cfg.Logger.Warn("host aggregation: workers missing after the aggregation wait; they push their own",
				zap.String("job", ag.a.Job), zap.Int64("step", p.t))
		}
		var timeout <-chan time.Time
		var timer *time.Timer
		if !deadline.IsZero() {
			timer = time.NewTimer(time.Until(deadline))
			timeout = timer.C
		}
		select {
		case <-ag.wake:
		case <-timeout:
		case <-p.ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
		if err := p.ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}
