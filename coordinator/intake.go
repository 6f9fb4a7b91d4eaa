package coordinator

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/wire"
)

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
	if _, err := n.Propose(n.leaderCtx(), Command{Type: CmdRegisterMember, RequestID: "member-" + r.ID + "-" + r.Host + fmt.Sprint(r.Threads) + "-" + r.Device,
		Member: &MemberInfo{ID: r.ID, Kind: r.Kind, Host: r.Host, Threads: r.Threads, Device: r.Device}}); err != nil {
		n.reply(m, wire.AckRejected, err.Error())
		return
	}
	if ls := n.leaderState(); ls != nil && ls.noteRegistration(&r, time.Now()) {
		n.log.Info("member restarted under its id", zap.String("id", r.ID))
	}
	n.reply(m, wire.AckOK, "")
}

func (n *Node) onHeartbeat(m *nats.Msg) {
	var h wire.Heartbeat
	if wire.Decode(m.Data, &h) != nil || !n.fromMember(m, "heartbeat", h.ID) {
		return
	}
	if ls := n.leaderState(); ls != nil && ls.noteHeartbeat(&h, time.Now()) {
		n.log.Info("member restarted under its id", zap.String("id", h.ID))
	}
}

// noteRegistration records a member's registration at now: a new process
// (whatever a parameter server served before is gone, see assign) of the
// incarnation r.Boot. It reports whether that replaces an incarnation
// this leader knew.
func (ls *leaderState) noteRegistration(r *wire.Register, now time.Time) (restarted bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.lastSeen[r.ID] = now
	if r.Boot != "" {
		if prev, ok := ls.boots[r.ID]; ok && prev != r.Boot {
			ls.reborn[r.ID], restarted = true, true
		}
		ls.boots[r.ID], ls.registered[r.ID] = r.Boot, r.Boot
	}
	if r.Kind == wire.KindParamServer {
		ls.serving[r.ID] = serving{since: now}
	}
	return restarted
}

// noteHeartbeat records a member's heartbeat at now, unless it is a late
// one of the incarnation a registration replaced. It reports whether the
// heartbeat shows a new incarnation (the process restarted under its id).
func (ls *leaderState) noteHeartbeat(h *wire.Heartbeat, now time.Time) (restarted bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if reg := ls.registered[h.ID]; reg != "" && h.Boot != "" && h.Boot != reg {
		return false
	}
	ls.lastSeen[h.ID] = now
	if h.Boot != "" {
		if prev, ok := ls.boots[h.ID]; ok && prev != h.Boot {
			ls.reborn[h.ID], restarted = true, true
		}
		ls.boots[h.ID] = h.Boot
	}
	if h.Kind == wire.KindParamServer {
		if prev, ok := ls.serving[h.ID]; !ok || prev.job != h.Job {
			ls.serving[h.ID] = serving{job: h.Job, since: now}
		}
	}
	return restarted
}

func (n *Node) onProgress(m *nats.Msg) {
	var p wire.Progress
	ls := n.leaderState()
	if ls == nil || wire.Decode(m.Data, &p) != nil || !n.fromMember(m, "progress", p.ID) {
		return
	}
	var members int
	var spe, total int64
	var specText string
	n.fsm.Read(func(st *State) {
		if j, ok := st.Jobs[p.Job]; ok && j.Current() != nil {
			members, spe, total, specText = len(j.Current().Members), j.StepsPerEpoch, j.TotalSteps, j.Spec
		}
	})
	if members == 0 {
		return
	}
	if e := p.Eval; e != nil { // the model after an epoch, not a step
		ls.record(p.Job, wire.HistoryEvals, &wire.HistoryEval{V: wire.Version, Epoch: e.Epoch, Step: e.Step, Time: time.Now().UnixNano(),
			Set: e.Set, Loss: e.Loss, Accuracy: e.Accuracy})
		return
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	jp := ls.progress[p.Job]
	if jp == nil {
		now := time.Now()
		jp = &jobProgress{perStep: map[int64]int{}, first: now, step: -1, every: wire.HistoryEvery(total), epochSteps: spe,
			lr: learningRate(specText, spe, total), point: pointSums{step: p.Step - 1, at: now}}
		ls.progress[p.Job] = jp
	}
	if e := p.Step / spe; e > jp.epoch {
		// An epoch whose last step was never complete here (this leader
		// started during it, or a member was lost at its end).
		ls.recordEpoch(p.Job, jp, min((jp.epoch+1)*spe, total)-1)
		jp.epoch = e
	}
	jp.reportSums.add(&p)
	jp.point.add(&p)
	jp.samples += p.N
	jp.last = time.Now()
	jp.perStep[p.Step]++
	if jp.perStep[p.Step] >= members {
		delete(jp.perStep, p.Step)
		if p.Step > jp.step {
			jp.step = p.Step
			if (p.Step+1)%jp.every == 0 || p.Step+1 == total {
				ls.recordPoint(p.Job, jp, p.Step)
			}
			if (p.Step+1)%spe == 0 || p.Step+1 == total {
				ls.recordEpoch(p.Job, jp, p.Step)
				jp.epoch = p.Step/spe + 1
			}
		}
	}
}

// recordEpoch records job's epoch jp.epoch, which ended at step, from its
// reports (none: nothing), and starts the next epoch's sums.
func (ls *leaderState) recordEpoch(job string, jp *jobProgress, step int64) {
	if jp.n > 0 {
		ls.record(job, wire.HistoryEpochs, &wire.HistoryEpoch{V: wire.Version, Epoch: jp.epoch, Step: step, Time: time.Now().UnixNano(),
			TrainLoss: jp.lossSum / float64(jp.n), TrainAccuracy: float64(jp.correct) / float64(jp.n), Samples: jp.n})
		jp.prevLossSum, jp.prevCorrect, jp.prevN = jp.lossSum, jp.correct, jp.n
	}
	jp.lossSum, jp.correct, jp.n = 0, 0, 0
}

// recordPoint records job's metric point at step, from the reports since
// its last one.
func (ls *leaderState) recordPoint(job string, jp *jobProgress, step int64) {
	pt := &jp.point
	now := time.Now()
	if pt.n == 0 || pt.reports == 0 || step <= pt.step {
		return
	}
	secs := now.Sub(pt.at).Seconds()
	r := float64(pt.reports)
	hp := &wire.HistoryPoint{V: wire.Version, Step: step, Epoch: step / max(jp.epochSteps, 1), Time: now.UnixNano(),
		Loss: pt.lossSum / float64(pt.n), Accuracy: float64(pt.correct) / float64(pt.n),
		StepMS: secs * 1e3 / float64(step-pt.step), ComputeMS: float64(pt.computeUS) / r / 1e3,
		PushMS: float64(pt.pushUS) / r / 1e3, WaitMS: float64(pt.waitUS) / r / 1e3}
	if secs > 0 {
		hp.SamplesPerSec = float64(pt.n) / secs
	}
	if jp.lr != nil {
		hp.LR = jp.lr(step)
	}
	ls.record(job, wire.HistoryPoints, hp)
	*pt = pointSums{step: step, at: now}
}

// learningRate is the learning rate of a job of spec text at a step, or
// nil when the spec does not parse.
func learningRate(text string, spe, total int64) func(int64) float64 {
	spec, err := jobspec.Parse([]byte(text))
	if err != nil {
		return nil
	}
	return func(step int64) float64 {
		return spec.Schedule.LR(spec.Optimizer.LR, int(step), int(spe), int(total))
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
			n.shrink(ls, j.ID, lost, "stopped pushing gradients: "+r.Reason, nil)
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
	if _, err := n.Propose(n.leaderCtx(), Command{Type: CmdCheckpoint, RequestID: fmt.Sprintf("ckpt-%s-%d", r.Job, r.Step),
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
	js, err := wire.JetStream(n.nc)
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
		v, err := n.Propose(n.leaderCtx(), Command{Type: CmdPublishModel, RequestID: "model-" + d.Job,
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
	if _, err := n.Propose(n.leaderCtx(), Command{Type: CmdFinishJob, RequestID: "finish-" + job, Finish: &FinishJob{Job: job, State: state, Reason: reason}}); err != nil {
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
