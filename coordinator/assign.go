package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/wire"
)

// timeouts are a job's barrier and step bounds: its spec's, else the
// coordinator's barrier and the default step bound.
func (n *Node) timeouts(j *JobRecord) (barrier, step time.Duration) {
	spec, err := jobspec.Parse([]byte(j.Spec))
	if err != nil {
		return n.cfg.BarrierTimeout, jobspec.DefaultStepTimeout
	}
	return spec.Barrier(n.cfg.BarrierTimeout), spec.Step()
}

// hostGroups is, for each rank of members, the rank of its host's
// aggregator: the host's lowest rank. A member whose host is not known is
// its own.
func (n *Node) hostGroups(members []string) []int {
	groups := make([]int, len(members))
	n.fsm.Read(func(st *State) {
		first := map[string]int{}
		for r, id := range members {
			groups[r] = r
			host := st.Members[id].Host
			if host == "" {
				continue
			}
			if f, ok := first[host]; ok {
				groups[r] = f
			} else {
				first[host] = r
			}
		}
	})
	return groups
}

// errNoAnswer: a member did not answer its assignment (not running, or
// restarting); one that answers with a refusal is another matter.
var errNoAnswer = errors.New("no answer")

// assign delivers a membership epoch's assignments: servers first, then
// workers. A server that refuses its assignment fails the job; one that
// does not answer is tried again on the next tick (and replaced if it
// stays away, see schedule); a worker that does not take its assignment
// leaves the job in the next epoch.
//
// Only a job's first start (fresh) or an epoch that resets the ranges
// from a checkpoint may go to a server that holds nothing of the job: a
// server restarted (or not heard from by a new leader) taking an epoch
// that goes on from where the others are would start its range afresh.
// Such a server is waited for, and replaced once it has served nothing of
// the job for a member timeout (see schedule).
func (n *Node) assign(ls *leaderState, j *JobRecord, ms *Membership, fresh bool) {
	barrier, step := n.timeouts(j)
	base := wire.Assignment{V: wire.Version, Job: j.ID, Spec: j.Spec, Epoch: ms.Epoch, Members: len(ms.Members), MemberIDs: ms.Members,
		Ranges: ms.Ranges, FromStep: ms.FromStep, TotalSteps: j.TotalSteps, StepsPerEpoch: j.StepsPerEpoch,
		BarrierTimeoutMS: barrier.Milliseconds(), StepTimeoutMS: step.Milliseconds(), Init: j.Init}
	if spec, err := jobspec.Parse([]byte(j.Spec)); err == nil {
		base.ChunkFloats = spec.BucketFloats()
		if spec.AggregatesPerHost() {
			base.Groups = n.hostGroups(ms.Members)
		}
	}
	send := func(id string, rank int, boot string) error {
		a := base
		a.Rank, a.Boot = rank, boot
		if ms.Reset && slices.Contains(ms.Servers, id) {
			a.Reset = true
			if rank < len(ms.Restore) {
				a.Restore = ms.Restore[rank]
			}
		}
		b, err := wire.Encode(&a)
		if err != nil {
			return err
		}
		var last error
		for try := 0; try < 3; try++ {
			ctx, cancel := context.WithTimeout(ls.ctx, 2*time.Second)
			reply, err := n.nc.RequestWithContext(ctx, wire.MemberSubject(id), b)
			cancel()
			if err != nil {
				last = err
				sleepCtx(ls.ctx, 200*time.Millisecond)
				continue
			}
			var ack wire.Ack
			if err := wire.Decode(reply.Data, &ack); err != nil {
				return err
			}
			if ack.Code == wire.AckNotHeld {
				// Restarted since it was heard serving the job: from now on
				// held back for it (see below), and replaced if it stays so.
				return fmt.Errorf("%w: %s: %s", errNoAnswer, id, ack.Reason)
			}
			if !ack.Accepted() {
				return fmt.Errorf("%s refused its assignment: %s", id, ack.Reason)
			}
			return nil
		}
		return fmt.Errorf("%w: %s did not take its assignment: %v", errNoAnswer, id, last)
	}
	for i, id := range ms.Servers {
		boot := ""
		if !fresh && !ms.Reset {
			ls.mu.Lock()
			holds := ls.serving[id].job == j.ID
			boot = ls.boots[id] // the incarnation heard serving it
			ls.mu.Unlock()
			if !holds {
				n.log.Debug("assignment held back: the server holds nothing of the job", zap.String("job", j.ID), zap.String("server", id))
				return
			}
		}
		if err := send(id, i, boot); err != nil {
			if errors.Is(err, errNoAnswer) {
				// Down or restarting (a rolling upgrade): delivery is tried
				// again next tick, and a server that stays away is judged
				// lost and replaced like any other.
				n.log.Debug("assignment not delivered", zap.String("job", j.ID), zap.Error(err))
				return
			}
			n.finish(j.ID, api.JobFailed, err.Error())
			return
		}
	}
	var lost []string
	var why error
	unanswered := 0
	for r, id := range ms.Members {
		if err := send(id, r, ""); err != nil {
			lost, why = append(lost, id), err
			if errors.Is(err, errNoAnswer) {
				unanswered++
			}
		}
	}
	if len(lost) > 0 && unanswered == len(ms.Members) {
		// No worker answers (all restarting, as in a rolling upgrade):
		// tried again next tick; workers that stay away are judged lost
		// by their heartbeats and replaced by idle ones (see shrink).
		n.log.Debug("assignment not delivered to any worker", zap.String("job", j.ID), zap.Error(why))
		return
	}
	if len(lost) > 0 { // the others go on without them, in the next epoch
		n.shrink(ls, j.ID, lost, fmt.Sprintf("did not take the assignment of epoch %d (%v)", ms.Epoch, why), nil)
		return
	}
	ls.mu.Lock()
	ls.assigned[j.ID], ls.assignedAt[j.ID] = ms.Epoch, time.Now()
	ls.mu.Unlock()
}
