package paramserver

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/wire"
)

// gradFor reports whether subject is a gradient push to js's range (from
// any worker).
func gradFor(subject string, js *jobState) bool {
	prefix := wire.GradSubjects(js.a.Job, js.a.Server)
	prefix = prefix[:len(prefix)-1] // without the final "*"
	return strings.HasPrefix(subject, prefix) && !strings.Contains(subject[len(prefix):], ".") && len(subject) > len(prefix)
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
		// A server restarted under its id, or one the job moved away
		// from: its membership is changing, and the coordinator gives the
		// worker its part in the next epoch.
		s.metrics.refused.WithLabelValues(refusedUnknownJob).Inc()
		return wire.AckEpoch, fmt.Sprintf("job %q is not served on this subject: this server does not hold the job's range (restarted or replaced); the next membership epoch says who does", g.Job)
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
	case len(js.a.MemberIDs) == js.a.Members && from != js.a.MemberIDs[g.Rank] && from != js.aggregatorOf(g.Rank):
		s.cfg.Logger.Warn("refused a gradient push as another worker's rank",
			zap.String("job", js.a.Job), zap.String("worker", from), zap.Int("rank", g.Rank), zap.String("rank_worker", js.a.MemberIDs[g.Rank]))
		return reject(refusedOtherRank, wire.AckRejected, "rank %d is worker %s's; this push came as %s", g.Rank, js.a.MemberIDs[g.Rank], from)
	case g.Chunk < 0 || g.Chunk >= len(js.chunks):
		return reject(refusedRank, wire.AckRejected, "chunk %d out of 0..%d", g.Chunk, len(js.chunks)-1)
	case g.N < 0:
		return reject(refusedRank, wire.AckRejected, "negative sample count %d", g.N)
	}
	covers, ns := g.Covers, g.Ns
	if len(covers) == 0 {
		covers, ns = []int{g.Rank}, []int{g.N}
	} else if why := js.checkCovers(g); why != "" {
		return reject(refusedRank, wire.AckRejected, "%s", why)
	}
	had := 0
	for _, r := range covers {
		if js.have[r][g.Chunk] {
			had++
		}
	}
	switch {
	case had == len(covers):
		js.stats.Duplicates++
		return wire.AckDuplicate, ""
	case had > 0: // some of them pushed on their own: summing them again would count them twice
		js.stats.Duplicates++
		return wire.AckConflict, fmt.Sprintf("chunk %d of %d of ranks %v is here already", g.Chunk, had, covers)
	}
	for i, r := range covers {
		if js.count > 0 && js.ns[r] != ns[i] && js.rankStarted(r) {
			return reject(refusedRank, wire.AckRejected, "rank %d sent %d samples in one chunk and %d in another", r, ns[i], js.ns[r])
		}
	}
	c := js.chunks[g.Chunk]
	dst := js.grads[g.Rank][c.Lo-js.rng.Lo : c.Hi-js.rng.Lo]
	if err := wire.DecodeFloats(dst, g.Data, g.Enc); err != nil {
		return reject(refusedMalformed, wire.AckRejected, "chunk %d: %v", g.Chunk, err)
	}
	js.wts[g.Rank][g.Chunk] = g.N
	for i, r := range covers {
		js.ns[r] = ns[i]
		js.have[r][g.Chunk] = true
	}
	js.count += len(covers)
	s.metrics.bytes.WithLabelValues(js.a.Job, bytesReceived).Add(float64(len(g.Data)))
	if js.count == len(covers) {
		js.firstPush = time.Now()
		s.armBarrierLocked(js, 0)
	}
	if js.count == js.a.Members*len(js.chunks) {
		s.completeLocked(js)
	}
	return wire.AckOK, ""
}

// aggregatorOf is the id of rank's host aggregator ("" without groups).
func (js *jobState) aggregatorOf(rank int) string {
	if len(js.a.Groups) != js.a.Members || len(js.a.MemberIDs) != js.a.Members {
		return ""
	}
	return js.a.MemberIDs[js.a.Groups[rank]]
}

// checkCovers says what is wrong with an aggregated push's ranks: they
// must be ascending ranks of the pusher's group, their sample counts
// summing to N.
func (js *jobState) checkCovers(g *wire.GradChunk) string {
	if len(g.Ns) != len(g.Covers) {
		return fmt.Sprintf("%d sample counts for %d ranks", len(g.Ns), len(g.Covers))
	}
	if len(js.a.Groups) != js.a.Members {
		return "the job does not aggregate per host"
	}
	total := 0
	for i, r := range g.Covers {
		switch {
		case r < 0 || r >= js.a.Members:
			return fmt.Sprintf("covered rank %d is not a member (0..%d)", r, js.a.Members-1)
		case i > 0 && r <= g.Covers[i-1]:
			return fmt.Sprintf("covered ranks %v are not ascending", g.Covers)
		case js.a.Groups[r] != js.a.Groups[g.Rank]:
			return fmt.Sprintf("rank %d is not of rank %d's host", r, g.Rank)
		case g.Ns[i] < 0:
			return fmt.Sprintf("negative sample count %d", g.Ns[i])
		}
		total += g.Ns[i]
	}
	if total != g.N {
		return fmt.Sprintf("sample counts %v sum to %d, not %d", g.Ns, total, g.N)
	}
	if !slices.Contains(g.Covers, g.Rank) {
		return fmt.Sprintf("covered ranks %v leave out the pushing rank %d", g.Covers, g.Rank)
	}
	return ""
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
