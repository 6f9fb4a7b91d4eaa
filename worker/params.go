package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/maas-ml/maas/internal/member"
	"github.com/maas-ml/maas/internal/wire"
	"github.com/maas-ml/maas/nn"
)

// paramWaiter fills m.Params with θ_step chunk by chunk: those fanned out
// to the inbox and, when the fan-out stalls for ParamWait, explicit pulls
// of those still missing. A step's forward asks for a prefix of the
// chunks at a time (until), so that it can start on the first layers.
type paramWaiter struct {
	w     *Worker
	a     Assignment
	m     *nn.Model
	refs  []chunkRef
	inbox *paramInbox
	key   func(int, int) int
	step  int64
	done  []bool
	got   int
	// held is the step of θ each chunk of m.Params holds, across steps:
	// a change fanned out for θ_step applies to θ_{step−1} only.
	held []int64
	buf  []float32
	// reconnects is the NATS reconnection count last seen.
	reconnects uint64
}

func (w *Worker) newParamWaiter(a Assignment, m *nn.Model, refs []chunkRef, inbox *paramInbox, held []int64, step int64, key func(int, int) int) *paramWaiter {
	return &paramWaiter{w: w, a: a, m: m, refs: refs, inbox: inbox, key: key, step: step, done: make([]bool, len(refs)),
		held: held, reconnects: w.nc.Stats().Reconnects}
}

// apply puts chunk i of θ_step from pc into m.Params: whole, or as a
// change from θ_{step−1} when this worker holds that (false otherwise:
// the chunk is pulled whole).
func (p *paramWaiter) apply(i int, pc *wire.ParamChunk) (bool, error) {
	ref := p.refs[i]
	p.w.countBytes(bytesReceived, len(pc.Data))
	dst := p.m.Params[ref.rng.Lo:ref.rng.Hi]
	switch {
	case !pc.Delta:
		if err := wire.Floats(dst, pc.Data); err != nil {
			return false, fmt.Errorf("worker: parameter chunk %d of server %d: %w", ref.index, ref.server, err)
		}
	case p.held[i] != p.step-1:
		return false, nil
	default:
		p.buf = slices.Grow(p.buf[:0], len(dst))[:len(dst)]
		if err := wire.DecodeFloats(p.buf, pc.Data, pc.Enc); err != nil {
			return false, fmt.Errorf("worker: parameter chunk %d of server %d: %w", ref.index, ref.server, err)
		}
		for j, v := range p.buf {
			dst[j] += v
		}
	}
	p.held[i] = p.step
	p.done[i] = true
	p.got++
	return true, nil
}

// chunksBelow is how many of refs (ascending) start below hi: the chunks
// Params[:hi] lies in.
func chunksBelow(refs []chunkRef, hi int) int {
	n := 0
	for n < len(refs) && refs[n].rng.Lo < hi {
		n++
	}
	return n
}

// prefixDone reports whether the first n chunks are in.
func (p *paramWaiter) prefixDone(n int) bool {
	for _, d := range p.done[:n] {
		if !d {
			return false
		}
	}
	return true
}

// take copies the chunks of θ_step the inbox has into m.Params.
func (p *paramWaiter) take() error {
	inbox := p.inbox
	inbox.mu.Lock()
	defer inbox.mu.Unlock()
	have := inbox.chunks[p.step]
	for i, ref := range p.refs {
		if pc, ok := have[p.key(ref.server, ref.index)]; ok && !p.done[i] {
			if _, err := p.apply(i, pc); err != nil {
				return err
			}
		}
	}
	for s := range inbox.chunks { // older steps are no longer needed, nor what was taken
		if s <= p.step {
			delete(inbox.chunks, s)
		}
	}
	return nil
}

// until returns once the first n chunks hold θ_step.
func (p *paramWaiter) until(ctx context.Context, n int) error {
	w := p.w
	deadline := member.NewDeadline(w.nc, w.cfg.StepTimeout)
	pullAt := time.Now().Add(w.cfg.ParamWait)
	// Back from a NATS outage, the fan-out of θ may have been missed, and
	// the servers' barrier for the next step may already be running (armed
	// by a faster worker's push): pull at once, and every reconnectPull
	// for ReconnectGrace after, until the servers answer.
	fastUntil := time.Time{}
	if r := w.nc.Stats().Reconnects; r != p.reconnects {
		p.reconnects, fastUntil, pullAt = r, time.Now().Add(member.ReconnectGrace), time.Now()
	}
	for {
		before := p.got
		if err := p.take(); err != nil {
			return err
		}
		if p.prefixDone(n) {
			return nil
		}
		if p.got > before {
			// The fan-out is under way: a slow one (many workers on one
			// server's link) must not be pulled again beside it, which
			// would only add copies to the same link. Pull once it has
			// made no progress for ParamWait.
			pullAt = time.Now().Add(w.cfg.ParamWait)
		}
		if deadline.Expired() {
			return fmt.Errorf("%w: θ_%d incomplete after %v (%d of %d chunks)", ErrTimeout, p.step, w.cfg.StepTimeout, p.got, len(p.refs))
		}
		if r := w.nc.Stats().Reconnects; r != p.reconnects {
			p.reconnects, fastUntil, pullAt = r, time.Now().Add(member.ReconnectGrace), time.Now()
		}
		if time.Now().After(pullAt) {
			for i, ref := range p.refs {
				if p.done[i] {
					continue
				}
				pc, err := w.pull(ctx, p.a, ref, p.step)
				if err != nil {
					if errors.Is(err, errNotYet) {
						continue
					}
					return err
				}
				if _, err := p.apply(i, pc); err != nil {
					return err
				}
			}
			pullAt = time.Now().Add(w.cfg.ParamWait)
			if time.Now().Before(fastUntil) {
				pullAt = time.Now().Add(min(w.cfg.ParamWait, reconnectPull))
			}
			continue
		}
		select {
		case <-p.inbox.wake:
		case <-time.After(min(time.Until(pullAt), reconnectPull)): // also looks for a reconnection
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// all returns once every chunk holds θ_step.
func (p *paramWaiter) all(ctx context.Context) error { return p.until(ctx, len(p.refs)) }

var errNotYet = errors.New("worker: parameters not ready")

// errConflict: a server refused a host's aggregate because it has one of
// the ranks' chunks already; the aggregator pushes them one by one.
var errConflict = errors.New("worker: aggregate covers a rank the server has")

// reconnectPull is how often a worker waiting for θ looks for its NATS
// connection coming back, and pulls after it did.
const reconnectPull = 250 * time.Millisecond

// pull asks a chunk's server for θ_step directly.
func (w *Worker) pull(ctx context.Context, a Assignment, ref chunkRef, step int64) (*wire.ParamChunk, error) {
	req, err := wire.Encode(&wire.PullRequest{V: wire.Version, Job: a.Job, Step: step, Chunk: ref.index})
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, w.cfg.PullTimeout)
	defer cancel()
	reply, err := w.nc.RequestWithContext(rctx, wire.PullSubject(a.Job, ref.server), req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errNotYet // no answer yet: keep waiting within the step timeout
	}
	if code := reply.Header.Get(wire.HeaderAck); code != "" {
		var ack wire.Ack
		wire.Decode(reply.Data, &ack)
		if ack.Code == wire.AckFuture {
			return nil, errNotYet
		}
		return nil, fmt.Errorf("%w: pull of θ_%d chunk %d: %s", ErrEpochChanged, step, ref.index, ack.Reason)
	}
	var pc wire.ParamChunk
	if err := wire.Decode(reply.Data, &pc); err != nil {
		return nil, err
	}
	if pc.Delta {
		return nil, fmt.Errorf("worker: pull of θ_%d chunk %d answered with a change, not the chunk", step, ref.index)
	}
	return &pc, nil
}
