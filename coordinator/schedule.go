package coordinator

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/wire"
)

// schedule runs while this node leads: every 250 ms (scheduleTick) it
// judges the members of running jobs by their heartbeats, changes the
// memberships that lost one, and starts queued jobs on idle live members.
func (n *Node) schedule(ls *leaderState) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	started := time.Now()
	reconnects := n.nc.Stats().Reconnects
	var down time.Time // since when this leader has been without NATS
	for {
		select {
		case <-ls.ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		// Heartbeats cannot arrive while this leader's NATS connection is
		// down: after it comes back, members get one timeout to heartbeat
		// again before they are judged, as with a new leader.
		if r := n.nc.Stats().Reconnects; r != reconnects || !n.nc.IsConnected() {
			reconnects, started = r, now
		}
		switch {
		case n.nc.IsConnected():
			down = time.Time{}
		case down.IsZero():
			down = now
		}
		n.scheduleTick(ls, tickState{now: now, started: started, down: down,
			// A new leader gives members one timeout to heartbeat before
			// judging them.
			judge: now.Sub(started) > n.cfg.MemberTimeout})
	}
}

// tickState is what one scheduler tick works from.
type tickState struct {
	now     time.Time
	started time.Time // since when members have been heard (leading, NATS back)
	down    time.Time // since when this leader has been without NATS; zero: connected
	judge   bool      // members have had a member timeout to heartbeat
	alive   map[string]bool
	busy    map[string]bool // members of running jobs, and of those started this tick
	members map[string]MemberInfo
}

// scheduleTick tends every running job, then starts the queued jobs that
// idle members can take.
func (n *Node) scheduleTick(ls *leaderState, ts tickState) {
	ts.alive = map[string]bool{}
	ls.mu.Lock()
	for id, t := range ls.lastSeen {
		if ts.now.Sub(t) < n.cfg.MemberTimeout {
			ts.alive[id] = true
		}
	}
	ls.mu.Unlock()
	var queued, running []*JobRecord
	ts.busy = map[string]bool{}
	ts.members = map[string]MemberInfo{}
	n.fsm.Read(func(st *State) {
		for _, id := range st.Order {
			j := st.Jobs[id]
			switch j.State {
			case api.JobQueued:
				c := *j
				queued = append(queued, &c)
			case api.JobRunning, api.JobPaused:
				c := *j
				c.Memberships = slices.Clone(j.Memberships)
				running = append(running, &c)
				for _, m := range append(slices.Clone(j.Current().Members), j.Current().Servers...) {
					ts.busy[m] = true
				}
			}
		}
		for id, m := range st.Members {
			ts.members[id] = m
		}
	})
	for _, j := range running {
		n.tendJob(ls, j, &ts)
	}
	ls.mu.Lock()
	for id := range ls.reborn { // a restart outside any job changes nothing
		if !ts.busy[id] {
			delete(ls.reborn, id)
		}
	}
	ls.mu.Unlock()
	for _, j := range queued {
		n.startJob(ls, j, &ts)
	}
}

// tendJob looks after one running or paused job: pauses it while NATS is
// away, resumes it, replaces lost servers, drops lost workers, grows it to
// its worker count, and (re)delivers its current epoch.
func (n *Node) tendJob(ls *leaderState, j *JobRecord, ts *tickState) {
	cur := j.Current()
	if !ts.down.IsZero() {
		// Nothing can be judged or delivered without NATS; past the
		// barrier timeout the job is paused, its members waiting in place
		// (their waits count only connected time).
		if barrier, _ := n.timeouts(j); j.State == api.JobRunning && ts.now.Sub(ts.down) > barrier {
			n.pause(ls, j.ID, fmt.Sprintf("NATS unreachable since %s (over the job's barrier timeout %v); the members wait in place and the job resumes when NATS is back",
				ts.down.Format(time.TimeOnly), barrier))
		}
		return
	}
	if j.State == api.JobPaused {
		// Resumed once every member heartbeats again, or after a member
		// timeout, when the missing ones are judged lost.
		back := true
		ls.mu.Lock()
		for _, id := range append(slices.Clone(cur.Members), cur.Servers...) {
			back = back && ls.lastSeen[id].After(ts.started)
		}
		ls.mu.Unlock()
		if !back && !ts.judge || !n.resume(ls, j.ID, ts.now.Sub(ts.started)) {
			return
		}
	}
	ls.mu.Lock()
	delivered := ls.assigned[j.ID] == cur.Epoch
	ls.mu.Unlock()
	if ts.judge {
		lost, lostServers, restarted, why := n.lostMembers(ls, j, ts)
		switch {
		case len(lostServers) > 0:
			// A restarted server may take a range again, after the idle ones.
			// The kept servers' hosts are taken: a standby on another host
			// comes first.
			var kept []string
			for _, id := range cur.Servers {
				if !slices.Contains(lostServers, id) {
					kept = append(kept, id)
				}
			}
			spare := append(spreadByHost(idle(wire.KindParamServer, ts.members, ts.alive, ts.busy), ts.members, kept), restarted...)
			if n.replaceServers(ls, j.ID, lostServers, why, spare) {
				ls.forgetRestarts(lostServers)
			}
			return
		case !delivered:
			// A worker change fences the servers in the current epoch, so
			// they must hold it first: assign delivers it (and drops the
			// workers that do not take it).
		case len(lost) > 0:
			idleW := idle(wire.KindWorker, ts.members, ts.alive, ts.busy)
			if n.shrink(ls, j.ID, lost, why, idleW) {
				ls.forgetRestarts(lost)
				for _, id := range idleW { // some may have taken over
					ts.busy[id] = true
				}
			}
			return
		case len(cur.Members) < j.Workers:
			for _, id := range n.grow(ls, j, idle(wire.KindWorker, ts.members, ts.alive, ts.busy)) {
				ts.busy[id] = true
			}
		}
	}
	if !delivered {
		n.assign(ls, j, cur, false)
	}
}

// lostMembers judges the members of j's current epoch: the workers lost
// (no heartbeat for a member timeout, or restarted), the servers lost
// (likewise, or alive but holding nothing of the job for a member
// timeout), the servers among them that restarted, and why, for the log.
func (n *Node) lostMembers(ls *leaderState, j *JobRecord, ts *tickState) (lost, lostServers, restartedServers []string, why string) {
	cur := j.Current()
	var restarted []string
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, id := range cur.Members {
		if !ts.alive[id] || ls.reborn[id] {
			lost = append(lost, id)
		}
		if ls.reborn[id] {
			restarted = append(restarted, id)
		}
	}
	why = fmt.Sprintf("stopped heartbeating (no heartbeat for %v)", n.cfg.MemberTimeout)
	if len(restarted) > 0 {
		why = fmt.Sprintf("stopped heartbeating or restarted (%v restarted)", restarted)
	}
	for _, id := range cur.Servers {
		switch s := ls.serving[id]; {
		case !ts.alive[id]:
			lostServers = append(lostServers, id)
		case ls.reborn[id]:
			lostServers, restartedServers = append(lostServers, id), append(restartedServers, id)
		case s.job != j.ID && ts.now.Sub(s.since) > n.cfg.MemberTimeout && ts.now.Sub(ls.assignedAt[j.ID]) > n.cfg.MemberTimeout:
			// Alive but serving nothing of this job for a member timeout:
			// the process restarted.
			lostServers, restartedServers = append(lostServers, id), append(restartedServers, id)
		}
	}
	if len(restartedServers) > 0 {
		why = fmt.Sprintf("stopped heartbeating or restarted without its range (%v restarted)", restartedServers)
	}
	return lost, lostServers, restartedServers, why
}

// startJob starts queued job j on idle members when there are enough:
// commits its first membership epoch and delivers it.
func (n *Node) startJob(ls *leaderState, j *JobRecord, ts *tickState) {
	idleW := idle(wire.KindWorker, ts.members, ts.alive, ts.busy)
	idleS := spreadByHost(idle(wire.KindParamServer, ts.members, ts.alive, ts.busy), ts.members, nil)
	if len(idleW) < j.Workers || len(idleS) < j.ParameterServers {
		return
	}
	ms := Membership{Epoch: 1, Members: idleW[:j.Workers], Servers: idleS[:j.ParameterServers],
		Ranges: wire.Split(j.NumParams, j.ParameterServers), FromStep: 0}
	if _, err := n.Propose(n.leaderCtx(), Command{Type: CmdStartJob, RequestID: fmt.Sprintf("start-%s-%d", j.ID, ms.Epoch),
		Start: &StartJob{Job: j.ID, Membership: ms}}); err != nil {
		n.log.Warn("start job", zap.String("job", j.ID), zap.Error(err))
		return
	}
	for _, id := range append(slices.Clone(ms.Members), ms.Servers...) {
		ts.busy[id] = true
	}
	ls.logf(j.ID, "started on workers %v and parameter servers %v", ms.Members, ms.Servers)
	n.assign(ls, j, &ms, true)
}

// pause commits that a running job is paused, and why.
func (n *Node) pause(ls *leaderState, jobID, why string) {
	if _, err := n.Propose(n.leaderCtx(), Command{Type: CmdPauseJob, Pause: &PauseJob{Job: jobID, Reason: why}}); err != nil {
		n.log.Warn("pause job", zap.String("job", jobID), zap.Error(err))
		return
	}
	n.log.Warn("job paused", zap.String("job", jobID), zap.String("reason", why))
	ls.logf(jobID, "paused: %s", why)
}

// resume commits that a paused job runs again, reporting whether it did.
func (n *Node) resume(ls *leaderState, jobID string, back time.Duration) bool {
	if _, err := n.Propose(n.leaderCtx(), Command{Type: CmdResumeJob, Pause: &PauseJob{Job: jobID}}); err != nil {
		n.log.Warn("resume job", zap.String("job", jobID), zap.Error(err))
		return false
	}
	n.log.Info("job resumed", zap.String("job", jobID))
	ls.logf(jobID, "resumed: NATS back for %v", back.Round(time.Millisecond))
	return true
}

// forgetRestarts clears the restart marks of members a new membership
// epoch has dealt with.
func (ls *leaderState) forgetRestarts(ids []string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, id := range ids {
		delete(ls.reborn, id)
	}
}

// serving is what a parameter server's heartbeats say it serves.
type serving struct {
	job   string
	since time.Time
}

// idle lists the live members of kind that work on no job, sorted.
// spreadByHost orders servers so that the first P of them are on as many
// hosts as they can be: each next one is on the host with the fewest of
// those before it and of taken (servers the job keeps), the lower id
// first. A job's ranges then cross as many server links as there are
// hosts to carry them.
func spreadByHost(servers []string, members map[string]MemberInfo, taken []string) []string {
	count := map[string]int{}
	for _, id := range taken {
		count[members[id].Host]++
	}
	left := slices.Clone(servers)
	out := make([]string, 0, len(servers))
	for len(left) > 0 {
		best := 0
		for i, id := range left {
			if count[members[id].Host] < count[members[left[best]].Host] {
				best = i
			}
		}
		id := left[best]
		count[members[id].Host]++
		out = append(out, id)
		left = slices.Delete(left, best, best+1)
	}
	return out
}

func idle(kind string, members map[string]MemberInfo, alive, busy map[string]bool) []string {
	var ids []string
	for id, m := range members {
		if m.Kind == kind && alive[id] && !busy[id] {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}
