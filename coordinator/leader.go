package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/wire"
)

// leaderState is what the leader keeps in memory: heartbeats, step
// progress and job logs. None of it is in the Raft log; a new leader
// rebuilds it from the next heartbeats and reports.
type leaderState struct {
	ctx    context.Context
	cancel context.CancelFunc
	subs   []*nats.Subscription
	wg     sync.WaitGroup

	mu         sync.Mutex // guards the fields below
	lastSeen   map[string]time.Time
	progress   map[string]*jobProgress
	logs       map[string][]api.LogEntry
	assigned   map[string]uint64    // job → membership epoch whose assignments were delivered
	assignedAt map[string]time.Time // job → when they were
	// serving is, per parameter server, the job its heartbeats name and
	// since when they have named it.
	serving map[string]serving
	// boots is each member's process incarnation, from its heartbeats;
	// reborn marks the members whose incarnation changed (the process
	// restarted under its id) until the schedule loop has acted on it.
	boots  map[string]string
	reborn map[string]bool
	// standbyWait: since when a job that lost a server waits for a standby.
	standbyWait map[string]time.Time
	// losses: job → worker → how often it was lost from the job.
	losses map[string]map[string]*workerLosses
	// ckpts collects stored checkpoint ranges: job → step → server → object.
	ckpts map[string]map[int64]map[int]string
}

// jobProgress accumulates the workers' step reports of a job.
type jobProgress struct {
	step       int64 // the latest step every rank reported
	perStep    map[int64]int
	epoch      int64
	lossSum    float64
	correct, n int
	samples    int
	first      time.Time
	last       time.Time
	// Sums over every worker's step reports, in microseconds.
	computeUS, pushUS, waitUS int64
	reports                   int64
}

func (n *Node) startLeading() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.leader != nil || n.nc == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	ls := &leaderState{ctx: ctx, cancel: cancel, lastSeen: map[string]time.Time{}, progress: map[string]*jobProgress{},
		logs: map[string][]api.LogEntry{}, assigned: map[string]uint64{}, assignedAt: map[string]time.Time{}, standbyWait: map[string]time.Time{}, serving: map[string]serving{}, boots: map[string]string{}, reborn: map[string]bool{}, losses: map[string]map[string]*workerLosses{}, ckpts: map[string]map[int64]map[int]string{}}
	n.leader = ls
	n.log.Info("leading", zap.String("node", n.cfg.ID))
	// Every member sends on subjects ending in its own id (see
	// wire.HeartbeatSubject): "*" hears them all.
	for subj, h := range map[string]nats.MsgHandler{
		wire.RegisterSubject("*"):  n.onRegister,
		wire.HeartbeatSubject("*"): n.onHeartbeat,
		wire.ProgressSubject("*"):  n.onProgress,
		wire.ReportSubject("*"):    n.onReport,
		wire.DoneSubject("*"):      n.onDone,
	} {
		sub, err := n.nc.Subscribe(subj, h)
		if err != nil {
			n.log.Error("subscribe", zap.String("subject", subj), zap.Error(err))
			continue
		}
		ls.subs = append(ls.subs, sub)
	}
	ls.wg.Add(1)
	go func() {
		defer ls.wg.Done()
		// Record this node's HTTP address so followers can redirect to it.
		for ctx.Err() == nil {
			if _, err := n.Propose(Command{Type: CmdRegisterNode, RequestID: "node-" + n.cfg.ID + "-" + n.HTTPAddr(),
				Node: &NodeInfo{ID: n.cfg.ID, HTTPAddr: n.HTTPAddr()}}); err == nil {
				break
			}
			sleepCtx(ctx, 200*time.Millisecond)
		}
		n.schedule(ls)
	}()
}

func (n *Node) stopLeading() {
	n.mu.Lock()
	ls := n.leader
	n.leader = nil
	n.mu.Unlock()
	if ls == nil {
		return
	}
	ls.cancel()
	for _, s := range ls.subs {
		s.Unsubscribe()
	}
	ls.wg.Wait()
	n.log.Info("stopped leading", zap.String("node", n.cfg.ID))
}

func (n *Node) leaderState() *leaderState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leader
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// logf appends an event to a job's log (leader memory).
func (ls *leaderState) logf(job, format string, args ...any) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	entries := ls.logs[job]
	ls.logs[job] = append(entries, api.LogEntry{Seq: int64(len(entries) + 1), Time: time.Now().UTC(), Message: fmt.Sprintf(format, args...)})
}

func (n *Node) reply(m *nats.Msg, code wire.AckCode, reason string) {
	if m.Reply == "" {
		return
	}
	if b, err := wire.Encode(&wire.Ack{V: wire.Version, Code: code, Reason: reason}); err == nil {
		m.Respond(b)
	}
}

func (n *Node) onRegister(m *nats.Msg) {
	var r wire.Register
	if err := wire.Decode(m.Data, &r); err != nil {
		n.reply(m, wire.AckRejected, err.Error())
		return
	}
	if !wire.ValidJobID(r.ID) || (r.Kind != wire.KindWorker && r.Kind != wire.KindParamServer) {
		n.reply(m, wire.AckRejected, fmt.Sprintf("member id %q (letters, digits, - and _) and kind %q (worker or paramserver)", r.ID, r.Kind))
		return
	}
	if !n.fromMember(m, "register", r.ID) {
		n.reply(m, wire.AckRejected, fmt.Sprintf("member %s registered on %s: a member registers only as itself", r.ID, m.Subject))
		return
	}
	if _, err := n.Propose(Command{Type: CmdRegisterMember, RequestID: "member-" + r.ID + "-" + r.Host + fmt.Sprint(r.Threads) + "-" + r.Device,
		Member: &MemberInfo{ID: r.ID, Kind: r.Kind, Host: r.Host, Threads: r.Threads, Device: r.Device}}); err != nil {
		n.reply(m, wire.AckRejected, err.Error())
		return
	}
	if ls := n.leaderState(); ls != nil {
		ls.mu.Lock()
		ls.lastSeen[r.ID] = time.Now()
		if r.Kind == wire.KindParamServer {
			// A member registers when its process starts: whatever it
			// served before is gone (see assign).
			ls.serving[r.ID] = serving{since: time.Now()}
		}
		ls.mu.Unlock()
	}
	n.reply(m, wire.AckOK, "")
}

func (n *Node) onHeartbeat(m *nats.Msg) {
	var h wire.Heartbeat
	if wire.Decode(m.Data, &h) != nil || !n.fromMember(m, "heartbeat", h.ID) {
		return
	}
	if ls := n.leaderState(); ls != nil {
		ls.mu.Lock()
		ls.lastSeen[h.ID] = time.Now()
		if h.Boot != "" {
			if prev, ok := ls.boots[h.ID]; ok && prev != h.Boot {
				ls.reborn[h.ID] = true
				n.log.Info("member restarted under its id", zap.String("id", h.ID))
			}
			ls.boots[h.ID] = h.Boot
		}
		if h.Kind == wire.KindParamServer {
			if prev, ok := ls.serving[h.ID]; !ok || prev.job != h.Job {
				ls.serving[h.ID] = serving{job: h.Job, since: time.Now()}
			}
		}
		ls.mu.Unlock()
	}
}

func (n *Node) onProgress(m *nats.Msg) {
	var p wire.Progress
	ls := n.leaderState()
	if ls == nil || wire.Decode(m.Data, &p) != nil || !n.fromMember(m, "progress", p.ID) {
		return
	}
	var members int
	var spe int64
	n.fsm.Read(func(st *State) {
		if j, ok := st.Jobs[p.Job]; ok && j.Current() != nil {
			members, spe = len(j.Current().Members), j.StepsPerEpoch
		}
	})
	if members == 0 {
		return
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	jp := ls.progress[p.Job]
	if jp == nil {
		jp = &jobProgress{perStep: map[int64]int{}, first: time.Now(), step: -1}
		ls.progress[p.Job] = jp
	}
	if e := p.Step / spe; e != jp.epoch {
		jp.epoch, jp.lossSum, jp.correct, jp.n = e, 0, 0, 0
	}
	jp.computeUS += p.ComputeUS
	jp.pushUS += p.PushUS
	jp.waitUS += p.WaitUS
	jp.reports++
	jp.lossSum += p.LossSum
	jp.correct += p.Correct
	jp.n += p.N
	jp.samples += p.N
	jp.last = time.Now()
	jp.perStep[p.Step]++
	if jp.perStep[p.Step] >= members {
		delete(jp.perStep, p.Step)
		if p.Step > jp.step {
			jp.step = p.Step
		}
	}
}

func (n *Node) onReport(m *nats.Msg) {
	var r wire.Report
	ls := n.leaderState()
	if ls == nil || wire.Decode(m.Data, &r) != nil || !n.fromMember(m, "report", r.ID) {
		return
	}
	switch r.Kind {
	case "missing":
		ls.logf(r.Job, "parameter server %d: %s", r.Server, r.Reason)
		var j *JobRecord
		n.fsm.Read(func(st *State) {
			if rec, ok := st.Jobs[r.Job]; ok && rec.State == api.JobRunning && rec.Current() != nil {
				c := *rec
				c.Memberships = slices.Clone(rec.Memberships)
				j = &c
			}
		})
		if j == nil || r.Epoch != j.Current().Epoch {
			return // the job ended, or the ranks are numbered in another membership epoch
		}
		var lost []string
		for _, rank := range r.Missing {
			if rank >= 0 && rank < len(j.Current().Members) {
				lost = append(lost, j.Current().Members[rank])
			}
		}
		if len(lost) > 0 {
			n.shrink(ls, j.ID, lost, "stopped pushing gradients: "+r.Reason)
		}
	case "bad_step":
		ls.logf(r.Job, "parameter server %d: %s", r.Server, r.Reason)
	case "failed":
		n.finish(r.Job, api.JobFailed, r.Reason)
	case "checkpoint":
		n.onCheckpoint(ls, &r)
	}
}

// onCheckpoint records one stored range; once every range of the step is
// stored the checkpoint is committed, and the objects of the checkpoint
// that now has two newer ones are deleted.
func (n *Node) onCheckpoint(ls *leaderState, r *wire.Report) {
	var servers int
	var oldest *CheckpointRecord
	n.fsm.Read(func(st *State) {
		if j, ok := st.Jobs[r.Job]; ok && j.Current() != nil && !api.Terminal(j.State) {
			servers = len(j.Current().Servers)
			if len(j.Checkpoints) >= keepCheckpoints {
				c := j.Checkpoints[0]
				oldest = &c
			}
		}
	})
	if servers == 0 {
		return
	}
	ls.mu.Lock()
	if ls.ckpts[r.Job] == nil {
		ls.ckpts[r.Job] = map[int64]map[int]string{}
	}
	got := ls.ckpts[r.Job][r.Step]
	if got == nil {
		got = map[int]string{}
		ls.ckpts[r.Job][r.Step] = got
	}
	got[r.Server] = r.Object
	complete := len(got) == servers
	var objects []string
	if complete {
		for i := range servers {
			objects = append(objects, got[i])
		}
		for step := range ls.ckpts[r.Job] {
			if step <= r.Step {
				delete(ls.ckpts[r.Job], step)
			}
		}
	}
	ls.mu.Unlock()
	if !complete {
		return
	}
	if _, err := n.Propose(Command{Type: CmdCheckpoint, RequestID: fmt.Sprintf("ckpt-%s-%d", r.Job, r.Step),
		Checkpoint: &CheckpointRecord{Job: r.Job, Step: r.Step, Bucket: r.Bucket, Objects: objects}}); err != nil {
		n.log.Warn("commit checkpoint", zap.String("job", r.Job), zap.Int64("step", r.Step), zap.Error(err))
		return
	}
	ls.logf(r.Job, "checkpoint of step %d committed (%d ranges)", r.Step, len(objects))
	if oldest != nil {
		go n.deleteObjects(oldest.Bucket, oldest.Objects)
	}
}

// deleteObjects removes a dropped checkpoint's objects from the store.
func (n *Node) deleteObjects(bucket string, objects []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(n.nc)
	if err != nil {
		return
	}
	store, err := js.ObjectStore(ctx, bucket)
	if err != nil {
		return
	}
	for _, o := range objects {
		if err := store.Delete(ctx, o); err != nil {
			n.log.Warn("delete old checkpoint", zap.String("object", o), zap.Error(err))
		}
	}
}

func (n *Node) onDone(m *nats.Msg) {
	var d wire.Done
	if err := wire.Decode(m.Data, &d); err != nil {
		n.reply(m, wire.AckRejected, err.Error())
		return
	}
	if !n.fromMember(m, "done", d.ID) {
		n.reply(m, wire.AckRejected, fmt.Sprintf("%s reported on %s: a member reports only for itself", d.ID, m.Subject))
		return
	}
	ls := n.leaderState()
	if ls == nil {
		n.reply(m, wire.AckRejected, "not the leader")
		return
	}
	if d.Err != "" {
		ls.logf(d.Job, "%s failed: %s", d.ID, d.Err)
		member := false
		n.fsm.Read(func(st *State) {
			if j, ok := st.Jobs[d.Job]; ok && j.Current() != nil {
				member = slices.Contains(j.Current().Members, d.ID) || slices.Contains(j.Current().Servers, d.ID)
			}
		})
		if member { // a worker dropped from the membership no longer counts
			n.finish(d.Job, api.JobFailed, fmt.Sprintf("%s: %s", d.ID, d.Err))
		}
		n.reply(m, wire.AckOK, "")
		return
	}
	var name string
	var terminal bool
	n.fsm.Read(func(st *State) {
		if j, ok := st.Jobs[d.Job]; ok {
			name, terminal = j.Name, api.Terminal(j.State)
		}
	})
	if name == "" {
		n.reply(m, wire.AckRejected, "unknown job "+d.Job)
		return
	}
	if !terminal {
		v, err := n.Propose(Command{Type: CmdPublishModel, RequestID: "model-" + d.Job,
			Model: &ModelRecord{Name: name, Job: d.Job, Bucket: d.Bucket, Prefix: d.Prefix, Files: d.Files, Metrics: d.Metrics}})
		if err != nil {
			n.reply(m, wire.AckRejected, err.Error())
			return
		}
		ls.logf(d.Job, "published model %s version %s", name, v)
		version, _ := strconv.Atoi(v)
		if b, err := wire.Encode(&wire.ModelPublished{V: wire.Version, Name: name, Version: version, Job: d.Job,
			Bucket: d.Bucket, Prefix: d.Prefix, Files: d.Files, Metrics: d.Metrics}); err == nil {
			n.nc.Publish(wire.SubjModelPublished, b)
		}
		n.finish(d.Job, api.JobSucceeded, "")
	}
	n.reply(m, wire.AckOK, "")
}

// finish commits a job's end and tells its members to stop.
func (n *Node) finish(job, state, reason string) {
	if _, err := n.Propose(Command{Type: CmdFinishJob, RequestID: "finish-" + job, Finish: &FinishJob{Job: job, State: state, Reason: reason}}); err != nil {
		n.log.Warn("finish job", zap.String("job", job), zap.Error(err))
		return
	}
	if ls := n.leaderState(); ls != nil {
		if reason != "" {
			ls.logf(job, "job %s: %s", state, reason)
		} else {
			ls.logf(job, "job %s", state)
		}
	}
	n.stopMembers(job)
}

// stopMembers tells every member of job's current epoch to stop working on it.
func (n *Node) stopMembers(job string) {
	var ids []string
	n.fsm.Read(func(st *State) {
		if j, ok := st.Jobs[job]; ok && j.Current() != nil {
			ids = append(slices.Clone(j.Current().Members), j.Current().Servers...)
		}
	})
	b, _ := wire.Encode(&wire.Assignment{V: wire.Version, Job: job, Stop: true})
	for _, id := range ids {
		n.nc.Publish(wire.MemberSubject(id), b)
	}
}

// schedule runs while this node leads: it starts queued jobs on idle live
// members and fails running jobs whose members stopped heartbeating.
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
		ls.mu.Lock()
		alive := map[string]bool{}
		for id, t := range ls.lastSeen {
			if now.Sub(t) < n.cfg.MemberTimeout {
				alive[id] = true
			}
		}
		ls.mu.Unlock()
		var queued, running []*JobRecord
		busy := map[string]bool{}
		members := map[string]MemberInfo{}
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
						busy[m] = true
					}
				}
			}
			for id, m := range st.Members {
				members[id] = m
			}
		})
		// A new leader gives members one timeout to heartbeat before
		// judging them.
		judge := now.Sub(started) > n.cfg.MemberTimeout
		for _, j := range running {
			cur := j.Current()
			if !down.IsZero() {
				// Nothing can be judged or delivered without NATS; past
				// the barrier timeout the job is paused, its members
				// waiting in place (their waits count only connected time).
				if barrier, _ := n.timeouts(j); j.State == api.JobRunning && now.Sub(down) > barrier {
					n.pause(ls, j.ID, fmt.Sprintf("NATS unreachable since %s (over the job's barrier timeout %v); the members wait in place and the job resumes when NATS is back",
						down.Format(time.TimeOnly), barrier))
				}
				continue
			}
			if j.State == api.JobPaused {
				// Resumed once every member heartbeats again, or after a
				// member timeout, when the missing ones are judged lost.
				back := true
				ls.mu.Lock()
				for _, id := range append(slices.Clone(cur.Members), cur.Servers...) {
					back = back && ls.lastSeen[id].After(started)
				}
				ls.mu.Unlock()
				if !back && !judge || !n.resume(ls, j.ID, now.Sub(started)) {
					continue
				}
			}
			ls.mu.Lock()
			delivered := ls.assigned[j.ID] == cur.Epoch
			ls.mu.Unlock()
			if judge {
				var lost, restarted []string
				ls.mu.Lock()
				for _, id := range cur.Members {
					if !alive[id] || ls.reborn[id] {
						lost = append(lost, id)
					}
					if ls.reborn[id] {
						restarted = append(restarted, id)
					}
				}
				why := fmt.Sprintf("stopped heartbeating (no heartbeat for %v)", n.cfg.MemberTimeout)
				if len(restarted) > 0 {
					why = fmt.Sprintf("stopped heartbeating or restarted (%v restarted)", restarted)
				}
				var lostServers []string
				restarted = nil
				for _, id := range cur.Servers {
					switch s := ls.serving[id]; {
					case !alive[id]:
						lostServers = append(lostServers, id)
					case ls.reborn[id]:
						lostServers, restarted = append(lostServers, id), append(restarted, id)
					case s.job != j.ID && now.Sub(s.since) > n.cfg.MemberTimeout && now.Sub(ls.assignedAt[j.ID]) > n.cfg.MemberTimeout:
						// Alive but serving nothing of this job for a
						// member timeout: the process restarted.
						lostServers, restarted = append(lostServers, id), append(restarted, id)
					}
				}
				ls.mu.Unlock()
				if len(restarted) > 0 {
					why = fmt.Sprintf("stopped heartbeating or restarted without its range (%v restarted)", restarted)
				}
				switch {
				case len(lostServers) > 0:
					// A restarted server may take a range again, after the idle ones.
					spare := append(idle(wire.KindParamServer, members, alive, busy), restarted...)
					if n.replaceServers(ls, j.ID, lostServers, why, spare) {
						ls.forgetRestarts(lostServers)
					}
					continue
				case !delivered:
					// A worker change fences the servers in the current
					// epoch, so they must hold it first: assign delivers
					// it (and drops the workers that do not take it).
				case len(lost) > 0:
					if n.shrink(ls, j.ID, lost, why) {
						ls.forgetRestarts(lost)
					}
					continue
				case len(cur.Members) < j.Workers:
					for _, id := range n.grow(ls, j, idle(wire.KindWorker, members, alive, busy)) {
						busy[id] = true
					}
				}
			}
			if !delivered {
				n.assign(ls, j, cur, false)
			}
		}
		ls.mu.Lock()
		for id := range ls.reborn { // a restart outside any job changes nothing
			if !busy[id] {
				delete(ls.reborn, id)
			}
		}
		ls.mu.Unlock()
		for _, j := range queued {
			idleW, idleS := idle(wire.KindWorker, members, alive, busy), idle(wire.KindParamServer, members, alive, busy)
			if len(idleW) < j.Workers || len(idleS) < j.ParameterServers {
				continue
			}
			ms := Membership{Epoch: 1, Members: idleW[:j.Workers], Servers: idleS[:j.ParameterServers],
				Ranges: wire.Split(j.NumParams, j.ParameterServers), FromStep: 0}
			if _, err := n.Propose(Command{Type: CmdStartJob, RequestID: fmt.Sprintf("start-%s-%d", j.ID, ms.Epoch),
				Start: &StartJob{Job: j.ID, Membership: ms}}); err != nil {
				n.log.Warn("start job", zap.String("job", j.ID), zap.Error(err))
				continue
			}
			for _, id := range append(slices.Clone(ms.Members), ms.Servers...) {
				busy[id] = true
			}
			ls.logf(j.ID, "started on workers %v and parameter servers %v", ms.Members, ms.Servers)
			n.assign(ls, j, &ms, true)
		}
	}
}

// pause commits that a running job is paused, and why.
func (n *Node) pause(ls *leaderState, jobID, why string) {
	if _, err := n.Propose(Command{Type: CmdPauseJob, Pause: &PauseJob{Job: jobID, Reason: why}}); err != nil {
		n.log.Warn("pause job", zap.String("job", jobID), zap.Error(err))
		return
	}
	n.log.Warn("job paused", zap.String("job", jobID), zap.String("reason", why))
	ls.logf(jobID, "paused: %s", why)
}

// resume commits that a paused job runs again, reporting whether it did.
func (n *Node) resume(ls *leaderState, jobID string, back time.Duration) bool {
	if _, err := n.Propose(Command{Type: CmdResumeJob, Pause: &PauseJob{Job: jobID}}); err != nil {
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
	if _, err := n.Propose(Command{Type: CmdStartJob, RequestID: fmt.Sprintf("start-%s-%d", j.ID, ms.Epoch),
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
// job (see joinable). It reports whether the epoch was committed.
func (n *Node) shrink(ls *leaderState, jobID string, lost []string, why string) bool {
	if !n.changeWorkers(ls, jobID, lost, nil, why) {
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
	if _, err := n.Propose(Command{Type: CmdStartJob, RequestID: fmt.Sprintf("start-%s-%d", j.ID, ms.Epoch),
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

// timeouts are a job's barrier and step bounds: its spec's, else the
// coordinator's barrier and the default step bound.
func (n *Node) timeouts(j *JobRecord) (barrier, step time.Duration) {
	spec, err := jobspec.Parse([]byte(j.Spec))
	if err != nil {
		return n.cfg.BarrierTimeout, jobspec.DefaultStepTimeout
	}
	return spec.Barrier(n.cfg.BarrierTimeout), spec.Step()
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
	send := func(id string, rank int) error {
		a := base
		a.Rank = rank
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
			if !ack.Accepted() {
				return fmt.Errorf("%s refused its assignment: %s", id, ack.Reason)
			}
			return nil
		}
		return fmt.Errorf("%w: %s did not take its assignment: %v", errNoAnswer, id, last)
	}
	for i, id := range ms.Servers {
		if !fresh && !ms.Reset {
			ls.mu.Lock()
			holds := ls.serving[id].job == j.ID
			ls.mu.Unlock()
			if !holds {
				n.log.Debug("assignment held back: the server holds nothing of the job", zap.String("job", j.ID), zap.String("server", id))
				return
			}
		}
		if err := send(id, i); err != nil {
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
	for r, id := range ms.Members {
		if err := send(id, r); err != nil {
			lost, why = append(lost, id), err
		}
	}
	if len(lost) > 0 { // the others go on without them, in the next epoch
		n.shrink(ls, j.ID, lost, fmt.Sprintf("did not take the assignment of epoch %d (%v)", ms.Epoch, why))
		return
	}
	ls.mu.Lock()
	ls.assigned[j.ID], ls.assignedAt[j.ID] = ms.Epoch, time.Now()
	ls.mu.Unlock()
}
