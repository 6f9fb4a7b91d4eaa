package coordinator

import (
	"fmt"
	"slices"
	"strings"

	"github.com/maas-ml/maas/internal/api"
)

// commands are the FSM's commands by type, each applied by one function
// that validates the command against the state and changes it, or returns
// an error wrapping ErrBadCommand, ErrNotFound or ErrConflict and changes
// nothing. Applying reads no clock (Command.Time is the proposer's).
var commands = map[string]func(st *State, c *Command) (string, error){
	CmdRegisterNode:   applyRegisterNode,
	CmdRegisterMember: applyRegisterMember,
	CmdSubmitJob:      applySubmitJob,
	CmdStartJob:       applyStartJob,
	CmdFinishJob:      applyFinishJob,
	CmdPauseJob:       applyPauseResume,
	CmdResumeJob:      applyPauseResume,
	CmdCheckpoint:     applyCheckpoint,
	CmdPublishModel:   applyPublishModel,
}

// applyRegisterNode records a coordinator node (id, Raft and HTTP addresses).
func applyRegisterNode(st *State, c *Command) (string, error) {
	if c.Node == nil || c.Node.ID == "" {
		return "", fmt.Errorf("%w: register_node without a node", ErrBadCommand)
	}
	st.Nodes[c.Node.ID] = *c.Node
	return c.Node.ID, nil
}

// applyRegisterMember records a worker or parameter server.
func applyRegisterMember(st *State, c *Command) (string, error) {
	if c.Member == nil || c.Member.ID == "" || (c.Member.Kind != "worker" && c.Member.Kind != "paramserver") {
		return "", fmt.Errorf("%w: register_member needs an id and kind worker or paramserver", ErrBadCommand)
	}
	st.Members[c.Member.ID] = *c.Member
	return c.Member.ID, nil
}

// applySubmitJob queues a job under a new id: its name made a subject
// token, and a sequence number.
func applySubmitJob(st *State, c *Command) (string, error) {
	j := c.Job
	if j == nil || j.Name == "" || j.Spec == "" {
		return "", fmt.Errorf("%w: submit_job without a job", ErrBadCommand)
	}
	st.JobSeq++
	rec := *j
	base := strings.Trim(idUnsafe.ReplaceAllString(j.Name, "-"), "-")
	if len(base) > 40 {
		base = base[:40]
	}
	rec.ID = fmt.Sprintf("%s-%d", base, st.JobSeq)
	rec.State = api.JobQueued
	rec.Submitted = c.Time
	st.Jobs[rec.ID] = &rec
	st.Order = append(st.Order, rec.ID)
	return rec.ID, nil
}

// applyStartJob commits a membership epoch of a job: its first (queued →
// running), or a later one (a paused job runs again).
func applyStartJob(st *State, c *Command) (string, error) {
	s := c.Start
	if s == nil {
		return "", fmt.Errorf("%w: start_job without a start", ErrBadCommand)
	}
	j, err := st.job(s.Job)
	if err != nil {
		return "", err
	}
	if api.Terminal(j.State) {
		return "", fmt.Errorf("%w: job %s is %s", ErrConflict, s.Job, j.State)
	}
	if cur := j.Current(); cur != nil && s.Membership.Epoch <= cur.Epoch {
		return "", fmt.Errorf("%w: membership epoch %d is not after %d", ErrConflict, s.Membership.Epoch, cur.Epoch)
	}
	if j.State == api.JobQueued {
		j.Started = c.Time
	}
	if j.State == api.JobPaused {
		j.Reason = ""
	}
	j.State = api.JobRunning
	j.Memberships = append(j.Memberships, s.Membership)
	return s.Job, nil
}

// applyFinishJob ends a job in a terminal state, with its reason.
func applyFinishJob(st *State, c *Command) (string, error) {
	fj := c.Finish
	if fj == nil || !api.Terminal(fj.State) {
		return "", fmt.Errorf("%w: finish_job needs a terminal state", ErrBadCommand)
	}
	j, err := st.job(fj.Job)
	if err != nil {
		return "", err
	}
	if api.Terminal(j.State) {
		return "", fmt.Errorf("%w: job %s is already %s", ErrConflict, fj.Job, j.State)
	}
	j.State, j.Reason, j.Finished = fj.State, fj.Reason, c.Time
	return fj.Job, nil
}

// applyPauseResume moves a job from running to paused (with a reason) or
// back.
func applyPauseResume(st *State, c *Command) (string, error) {
	// pause: running → paused, with a reason; resume: paused → running.
	p, pause := c.Pause, c.Type == CmdPauseJob
	from, to := api.JobRunning, api.JobPaused
	if !pause {
		from, to = api.JobPaused, api.JobRunning
	}
	if p == nil || pause && p.Reason == "" {
		return "", fmt.Errorf("%w: %s needs a job (and, to pause, a reason)", ErrBadCommand, c.Type)
	}
	j, err := st.job(p.Job)
	if err != nil {
		return "", err
	}
	if j.State != from {
		return "", fmt.Errorf("%w: job %s is %s, not %s", ErrConflict, p.Job, j.State, from)
	}
	j.State, j.Reason = to, ""
	if pause {
		j.Reason = p.Reason
	}
	return p.Job, nil
}

// applyCheckpoint commits a checkpoint of a job, keeping the last keepCheckpoints.
func applyCheckpoint(st *State, c *Command) (string, error) {
	cp := c.Checkpoint
	if cp == nil {
		return "", fmt.Errorf("%w: checkpoint without a record", ErrBadCommand)
	}
	j, err := st.job(cp.Job)
	if err != nil {
		return "", err
	}
	if cp.Step <= j.CommittedStep() {
		return "", fmt.Errorf("%w: checkpoint step %d is not after %d", ErrConflict, cp.Step, j.CommittedStep())
	}
	j.Checkpoints = append(j.Checkpoints, *cp)
	if len(j.Checkpoints) > keepCheckpoints { // an older one goes once two newer exist
		j.Checkpoints = slices.Clone(j.Checkpoints[len(j.Checkpoints)-keepCheckpoints:])
	}
	return fmt.Sprint(cp.Step), nil
}

// applyPublishModel adds the next version of a model to the index, and
// links it to its job.
func applyPublishModel(st *State, c *Command) (string, error) {
	m := c.Model
	if m == nil || m.Name == "" {
		return "", fmt.Errorf("%w: publish_model without a model", ErrBadCommand)
	}
	rec := *m
	rec.Version = len(st.Models[m.Name]) + 1
	rec.Created = c.Time
	st.Models[m.Name] = append(st.Models[m.Name], rec)
	if j, ok := st.Jobs[m.Job]; ok {
		j.Model = &rec
	}
	return fmt.Sprint(rec.Version), nil
}

// job is the job id, or an error wrapping ErrNotFound.
func (st *State) job(id string) (*JobRecord, error) {
	j, ok := st.Jobs[id]
	if !ok {
		return nil, fmt.Errorf("%w: job %s", ErrNotFound, id)
	}
	return j, nil
}
