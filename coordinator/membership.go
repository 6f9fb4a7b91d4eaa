package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/wire"
)

// replaceServers commits the next membership epoch of a running job with
// standby servers in the places of the lost ones and every range reset to
// the last committed checkpoint (θ, optimizer state and step count; the
// seed's θ_0 before the first): the workers go back to that step, so at
// most checkpoint_every steps are redone. Without a standby it waits,
// up to the barrier timeout, then fails the job. It reports whether the
// new epoch was committed.
func (n *Node) replaceServers(ls *leaderState, jobID string, lost []string, why string, spare []string) bool {
	var j *JobRecord
	n.fsm.Read(func(st *State) {
		if rec, ok := st.Jobs[jobID]; ok && rec.State == api.JobRunning && rec.Current() != nil {
			c := *rec
			c.Memberships = slices.Clone(rec.Memberships)
			c.Checkpoints = slices.Clone(rec.Checkpoints)
			j = &c
		}
	})
	if j == nil {
		return false
	}
	cur := j.Current()
	if len(spare) < len(lost) {
		ls.mu.Lock()
		since, waiting := ls.standbyWait[jobID]
		if !waiting {
			ls.standbyWait[jobID] = time.Now()
			since = time.Now()
		}
		ls.mu.Unlock()
		if !waiting {
			barrier, _ := n.timeouts(j)
			ls.logf(jobID, "parameter servers %v %s; waiting up to %v for a standby server", lost, why, barrier)
		}
		if barrier, _ := n.timeouts(j); time.Since(since) > barrier {
			n.finish(jobID, api.JobFailed, fmt.Sprintf("parameter servers %v %s, and no standby server took their ranges within %v", lost, why, barrier))
		}
		return false
	}
	ls.mu.Lock()
	delete(ls.standbyWait, jobID)
	ls.mu.Unlock()
	servers := slices.Clone(cur.Servers)
	for i, id := range servers {
		if slices.Contains(lost, id) {
			servers[i], spare = spare[0], spare[1:]
		}
	}
	ms := Membership{Epoch: cur.Epoch + 1, Members: cur.Members, Servers: servers, Ranges: cur.Ranges, Reset: true}
	if len(j.Checkpoints) > 0 {
		last := j.Checkpoints[len(j.Checkpoints)-1]
		ms.FromStep, ms.Restore = last.Step, last.Objects
	}
	if _, err := n.Propose(n.leaderCtx(), Command{Type: CmdStartJob, RequestID: fmt.Sprintf("start-%s-%d", j.ID, ms.Epoch),
		Start: &StartJob{Job: j.ID, Membership: ms}}); err != nil {
		n.log.Warn("membership change", zap.String("job", j.ID), zap.Error(err))
		return false
	}
	ls.mu.Lock()
	ls.assignedAt[j.ID] = time.Now() // its servers get a member timeout to take the new epoch
	ls.mu.Unlock()
	n.log.Info("parameter servers lost: ranges reassigned", zap.String("job", j.ID), zap.Strings("lost", lost),
		zap.Uint64("epoch", ms.Epoch), zap.Int64("from_step", ms.FromStep), zap.Strings("servers", servers))
	ls.logf(j.ID, "parameter servers %v %s: membership epoch %d restores step %d on %v", lost, why, ms.Epoch, ms.FromStep, servers)
	return true
}

// shrink commits the next membership epoch of a running job without the
// workers lost (see changeWorkers); each loss backs that worker off the
// job (see joinable). When every worker is lost, joinable ones of idle
// take their places in the same epoch. It reports whether the epoch was
// committed.
func (n *Node) shrink(ls *leaderState, jobID string, lost []string, why string, idle []string) bool {
	var add []string
	if j, ok := n.job(jobID); ok && j.Current() != nil && !slices.ContainsFunc(j.Current().Members, func(id string) bool { return !slices.Contains(lost, id) }) {
		// Every worker lost at once (a rolling restart): idle workers that
		// may join take over in the same epoch, rather than the job
		// failing for want of workers.
		now := time.Now()
		ls.mu.Lock()
		for _, id := range idle {
			if len(add) < j.Workers && ls.joinable(jobID, id, now) {
				add = append(add, id)
			}
		}
		ls.mu.Unlock()
	}
	if !n.changeWorkers(ls, jobID, lost, add, why) {
		return false
	}
	ls.mu.Lock()
	for _, id := range lost {
		ls.noteLoss(jobID, id, time.Now())
	}
	ls.mu.Unlock()
	return true
}

// Backoff of a worker lost from a job: it may rejoin after
// rejoinBackoff·2^(losses−1), and never after maxLosses losses.
const (
	rejoinBackoff = 2 * time.Second
	maxLosses     = 3
)

// workerLosses counts one worker's losses from one job.
type workerLosses struct {
	count int
	at    time.Time // the last loss
	until time.Time // not before then
}

func (ls *leaderState) noteLoss(job, id string, now time.Time) {
	if ls.losses[job] == nil {
		ls.losses[job] = map[string]*workerLosses{}
	}
	l := ls.losses[job][id]
	if l == nil {
		l = &workerLosses{}
		ls.losses[job][id] = l
	}
	l.count++
	l.at, l.until = now, now.Add(rejoinBackoff<<(l.count-1))
}

// joinable reports whether worker id may join job now: not excluded after
// maxLosses losses, past its backoff, and heard from since its last loss
// (a worker that died keeps looking alive until its heartbeats are a
// member timeout old, which can outlast the backoff).
func (ls *leaderState) joinable(job, id string, now time.Time) bool {
	l := ls.losses[job][id]
	return l == nil || l.count < maxLosses && now.After(l.until) && ls.lastSeen[id].After(l.at)
}

// grow adds idle workers to a running job that has fewer than it asked
// for (after losses), in a new membership epoch (see changeWorkers), and
// returns the ones it took.
func (n *Node) grow(ls *leaderState, j *JobRecord, idle []string) []string {
	want := j.Workers - len(j.Current().Members)
	now := time.Now()
	var add []string
	ls.mu.Lock()
	for _, id := range idle {
		if len(add) < want && ls.joinable(j.ID, id, now) {
			add = append(add, id)
		}
	}
	ls.mu.Unlock()
	if len(add) == 0 || !n.changeWorkers(ls, j.ID, nil, add, "joined") {
		return nil
	}
	return add
}

// changeWorkers commits the next membership epoch of a running job
// without the workers lost and with those added after the others: the
// workers split every batch among themselves from the lowest step the
// parameter servers hold (the step in flight: the servers drop its partial
// sums, or undo it where they applied it), so at most that step is redone
// and every sample is still used once per epoch. Without workers left the
// job fails. The schedule loop delivers the new epoch's assignments. Until
// every server has heartbeated its step to this leader it changes nothing
// (the loop calls it again) and returns false.
func (n *Node) changeWorkers(ls *leaderState, jobID string, lost, added []string, why string) bool {
	var j *JobRecord
	n.fsm.Read(func(st *State) {
		if rec, ok := st.Jobs[jobID]; ok && rec.State == api.JobRunning && rec.Current() != nil {
			c := *rec
			c.Memberships = slices.Clone(rec.Memberships)
			j = &c
		}
	})
	if j == nil {
		return false
	}
	cur := j.Current()
	lost = slices.DeleteFunc(slices.Clone(lost), func(id string) bool { return !slices.Contains(cur.Members, id) })
	added = slices.DeleteFunc(slices.Clone(added), func(id string) bool { return slices.Contains(cur.Members, id) })
	if len(lost) == 0 && len(added) == 0 {
		return false
	}
	var keep []string
	for _, id := range cur.Members {
		if !slices.Contains(lost, id) {
			keep = append(keep, id)
		}
	}
	if len(keep) == 0 && len(added) == 0 {
		n.finish(j.ID, api.JobFailed, fmt.Sprintf("every worker was lost: %v %s", lost, why))
		return true
	}
	keep = append(keep, added...)
	from, err := n.fence(ls, j.ID, cur)
	if err != nil {
		n.log.Info("membership change waits: a server did not fence", zap.String("job", j.ID), zap.Error(err))
		return false
	}
	from = max(from, cur.FromStep)
	ms := Membership{Epoch: cur.Epoch + 1, Members: keep, Servers: cur.Servers, Ranges: cur.Ranges, FromStep: from}
	if _, err := n.Propose(n.leaderCtx(), Command{Type: CmdStartJob, RequestID: fmt.Sprintf("start-%s-%d", j.ID, ms.Epoch),
		Start: &StartJob{Job: j.ID, Membership: ms}}); err != nil {
		n.log.Warn("membership change", zap.String("job", j.ID), zap.Error(err))
		return false
	}
	n.log.Info("workers changed", zap.String("job", j.ID), zap.Strings("lost", lost), zap.Strings("added", added),
		zap.Uint64("epoch", ms.Epoch), zap.Int64("from_step", from), zap.Strings("members", keep))
	if len(lost) > 0 {
		ls.logf(j.ID, "workers %v %s: membership epoch %d goes on from step %d with %v", lost, why, ms.Epoch, from, keep)
	} else {
		ls.logf(j.ID, "workers %v joined: membership epoch %d goes on from step %d with %v", added, ms.Epoch, from, keep)
	}
	return true
}

// fenceHold is how long a fence holds a server's range without the next
// membership epoch: far longer than a commit and its delivery take.
const fenceHold = 10 * time.Second

// fence fences every server of cur (see paramserver.Server.Fence) and
// returns the lowest step they hold: where the next epoch can start, since
// no server completes another step of cur meanwhile.
func (n *Node) fence(ls *leaderState, job string, cur *Membership) (int64, error) {
	b, err := wire.Encode(&wire.Assignment{V: wire.Version, Job: job, Epoch: cur.Epoch, Fence: true, FenceMS: fenceHold.Milliseconds()})
	if err != nil {
		return 0, err
	}
	steps := make([]int64, len(cur.Servers))
	errs := make([]error, len(cur.Servers))
	var wg sync.WaitGroup
	for i, id := range cur.Servers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ls.ctx, 2*time.Second)
			defer cancel()
			reply, err := n.nc.RequestWithContext(ctx, wire.MemberSubject(id), b)
			var ack wire.Ack
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("fence %s: %w", id, err)
			case wire.Decode(reply.Data, &ack) != nil || !ack.Accepted():
				errs[i] = fmt.Errorf("fence %s: %s", id, ack.Reason)
			default:
				steps[i] = ack.Step
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return slices.Min(steps), nil
}
