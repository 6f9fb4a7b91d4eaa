package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/maas-ml/maas/internal/wire"
)

// Per-host aggregation (a job's aggregation: host). The workers of a host
// push their gradient chunks to the host's aggregator, its lowest rank,
// over the host's own NATS server; the aggregator sums each chunk in rank
// order, weighted by samples, and pushes one chunk for the host to the
// parameter server, naming the ranks it covers. A rank the aggregator has
// not heard from within Config.AggregateWait of its own gradient is left
// out of the chunk and pushes its own, so that a lost worker is reported
// by the parameter servers as itself. A worker that cannot reach its
// aggregator pushes its own too; a lost aggregator is then the one rank
// missing, replaced like any worker. On an aggregator's message Chunk
// counts every server's chunks in order (the index into the worker's
// chunk list).

// hostGroup is this worker's place in its host's aggregation.
type hostGroup struct {
	leader   int    // the rank of the host's aggregator
	leaderID string // its worker id
	ranks    []int  // the host's ranks, ascending
}

// groupOf returns a's host group, or false when the worker pushes its own
// gradient (no aggregation, or alone on its host).
func groupOf(a Assignment) (hostGroup, bool) {
	if len(a.Groups) != a.Members || len(a.MemberIDs) != a.Members {
		return hostGroup{}, false
	}
	l := a.Groups[a.Rank]
	var ranks []int
	for r, g := range a.Groups {
		if g == l {
			ranks = append(ranks, r)
		}
	}
	if len(ranks) < 2 {
		return hostGroup{}, false
	}
	return hostGroup{leader: l, leaderID: a.MemberIDs[l], ranks: ranks}, true
}

// errUnreachable: the aggregator did not answer a push at all.
var errUnreachable = errors.New("worker: host aggregator unreachable")

// aggregator is a host aggregator's collection of its host's chunks.
type aggregator struct {
	w     *Worker
	a     Assignment
	g     hostGroup
	refs  []chunkRef
	sub   *nats.Subscription
	wake  chan struct{}
	mu    sync.Mutex // guards steps and current
	steps map[int64]*aggStep
	// current is the step being pushed; chunks of earlier steps are stale.
	current int64
	// fb is the error feedback of the host's pushes in a lossy encoding
	// (nil otherwise).
	fb *wire.Feedback
}

// aggStep is what the aggregator has of one step.
type aggStep struct {
	grads map[int]map[int][]float32 // chunk → rank → the rank's mean gradient
	ns    map[int]int               // rank → its samples
	sent  map[int][]int             // chunk → the ranks its push covered
	own   int                       // the aggregator's own chunks final so far
}

func newAggStep() *aggStep {
	return &aggStep{grads: map[int]map[int][]float32{}, ns: map[int]int{}, sent: map[int][]int{}}
}

// startAggregator takes the host's pushes for a's job until stop.
func (w *Worker) startAggregator(a Assignment, g hostGroup, refs []chunkRef) (*aggregator, error) {
	ag := &aggregator{w: w, a: a, g: g, refs: refs, wake: make(chan struct{}, 1), steps: map[int64]*aggStep{}, current: a.FromStep}
	if len(refs) > 0 {
		ag.fb = newFeedback(a.Spec, refs[len(refs)-1].rng.Hi)
	}
	sub, err := w.nc.Subscribe(wire.AggSubjects(a.Job, a.selfID()), ag.onChunk)
	if err != nil {
		return nil, err
	}
	ag.sub = sub
	return ag, w.nc.Flush()
}

func (ag *aggregator) stop() { ag.sub.Unsubscribe() }

func (ag *aggregator) respond(m *nats.Msg, code wire.AckCode, reason string) {
	if b, err := wire.Encode(&wire.Ack{V: wire.Version, Code: code, Reason: reason}); err == nil {
		m.Respond(b)
	}
}

// onChunk takes one chunk from a worker of the host.
func (ag *aggregator) onChunk(m *nats.Msg) {
	var c wire.GradChunk
	if err := wire.Decode(m.Data, &c); err != nil {
		ag.respond(m, wire.AckRejected, err.Error())
		return
	}
	from := wire.MemberOf(m.Subject)
	switch {
	case c.Job != ag.a.Job:
		ag.respond(m, wire.AckRejected, fmt.Sprintf("job %q is not aggregated here", c.Job))
		return
	case c.Epoch > ag.a.Epoch:
		// A push of the next epoch while this aggregator of the last one
		// is still subscribed: the next one's answers it.
		return
	case c.Epoch < ag.a.Epoch:
		ag.respond(m, wire.AckEpoch, fmt.Sprintf("membership epoch %d, the aggregator is in %d", c.Epoch, ag.a.Epoch))
		return
	case c.Rank == ag.a.Rank || !slices.Contains(ag.g.ranks, c.Rank) || ag.a.MemberIDs[c.Rank] != from:
		ag.respond(m, wire.AckRejected, fmt.Sprintf("rank %d (%s) is not a worker of this host", c.Rank, from))
		return
	case c.Chunk < 0 || c.Chunk >= len(ag.refs) || c.N < 0:
		ag.respond(m, wire.AckRejected, fmt.Sprintf("chunk %d, %d samples", c.Chunk, c.N))
		return
	}
	ref := ag.refs[c.Chunk]
	g := make([]float32, ref.rng.Len())
	if err := wire.DecodeFloats(g, c.Data, c.Enc); err != nil {
		ag.respond(m, wire.AckRejected, err.Error())
		return
	}
	ag.mu.Lock()
	if c.Step < ag.current {
		// The aggregator has moved on (with overlap, as soon as its pushes
		// of that step were acknowledged): a chunk its push left out goes
		// to the server directly; the others are there.
		code := wire.AckStale
		if st := ag.steps[c.Step]; st != nil {
			if covered, sent := st.sent[c.Chunk]; sent && !slices.Contains(covered, c.Rank) {
				code = wire.AckDirect
			}
		}
		ag.mu.Unlock()
		ag.respond(m, code, "")
		return
	}
	st := ag.steps[c.Step]
	if st == nil {
		st = newAggStep()
		ag.steps[c.Step] = st
	}
	if covered, sent := st.sent[c.Chunk]; sent {
		ag.mu.Unlock()
		if slices.Contains(covered, c.Rank) {
			ag.respond(m, wire.AckDuplicate, "")
		} else {
			ag.respond(m, wire.AckDirect, "the host's push of this chunk has gone")
		}
		return
	}
	if st.grads[c.Chunk] == nil {
		st.grads[c.Chunk] = map[int][]float32{}
	}
	st.grads[c.Chunk][c.Rank], st.ns[c.Rank] = g, c.N
	ag.mu.Unlock()
	ag.signal()
	ag.respond(m, wire.AckOK, "")
}

// signal wakes the step's sending loop.
func (ag *aggregator) signal() {
	select {
	case ag.wake <- struct{}{}:
	default:
	}
}

// pushChunk pushes chunk i of step t: the mean of the covered ranks'
// gradients, weighted by their samples and summed in rank order. A server
// that has one of them already (pushed on its own) takes them one by one.
func (ag *aggregator) pushChunk(ctx context.Context, i int, t int64, covers, ns []int, parts [][]float32) error {
	ref, a := ag.refs[i], ag.a
	total := 0
	for _, n := range ns {
		total += n
	}
	mean := make([]float32, ref.rng.Len())
	if total > 0 {
		for k, g := range parts {
			w := float32(float64(ns[k]) / float64(total))
			if w == 0 {
				continue
			}
			for j, v := range g {
				mean[j] += w * v
			}
		}
	}
	enc := a.Spec.Encoding()
	subject := wire.GradSubject(a.Job, ref.server, a.selfID())
	msg, err := wire.Encode(&wire.GradChunk{V: wire.Version, Job: a.Job, Epoch: a.Epoch, Step: t, Rank: a.Rank, N: total, Chunk: ref.index,
		Data: appendGrad(nil, mean, ref.rng.Lo, a.Spec, ag.fb), Enc: enc, Covers: covers, Ns: ns})
	if err != nil {
		return err
	}
	err = ag.w.pushOne(ctx, subject, msg, ref, t)
	if !errors.Is(err, errConflict) {
		return err
	}
	for k, r := range covers {
		msg, err := wire.Encode(&wire.GradChunk{V: wire.Version, Job: a.Job, Epoch: a.Epoch, Step: t, Rank: r, N: ns[k], Chunk: ref.index,
			Data: appendGrad(nil, parts[k], ref.rng.Lo, a.Spec, nil), Enc: enc})
		if err != nil {
			return err
		}
		if err := ag.w.pushOne(ctx, subject, msg, ref, t); err != nil && !errors.Is(err, errConflict) {
			return err
		}
	}
	return nil
}
