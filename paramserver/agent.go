package paramserver

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/member"
	"github.com/maas-ml/maas/internal/wire"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/nn/safetensors"
	"github.com/maas-ml/maas/tensor"
)

// Agent is the `maas paramserver` process: a cluster member that serves
// the key ranges the coordinator assigns it.
type Agent struct {
	srv *Server
	cfg member.Config

	mu   sync.Mutex        // guards jobs
	jobs map[string]uint64 // job → membership epoch served
}

// NewAgent returns an agent serving on nc.
func NewAgent(nc *nats.Conn, mc member.Config, sc Config) *Agent {
	mc.Kind = wire.KindParamServer
	if sc.ID == "" {
		sc.ID = mc.ID
	}
	if sc.Checkpointer == nil {
		sc.Checkpointer = ObjectStoreCheckpointer{NC: nc}
	}
	return &Agent{srv: New(nc, sc), cfg: mc, jobs: map[string]uint64{}}
}

// Server returns the agent's parameter server.
func (a *Agent) Server() *Server { return a.srv }

// Run registers with the coordinator and serves until ctx ends.
func (a *Agent) Run(ctx context.Context, nc *nats.Conn) error {
	defer func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		for job := range a.jobs {
			a.srv.Stop(job)
		}
	}()
	return member.Run(ctx, nc, a.cfg, a)
}

// Job returns the first job served (servers may serve several).
func (a *Agent) Job() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	for j := range a.jobs {
		return j
	}
	return ""
}

// Fence fences job's range for a membership change (see Server.Fence).
func (a *Agent) Fence(job string, epoch uint64, hold time.Duration) (int64, error) {
	return a.srv.Fence(job, epoch, hold)
}

// Assign starts serving a job's range from its seeded initial parameters,
// or stops serving it.
func (a *Agent) Assign(ctx context.Context, as *wire.Assignment) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if as.Stop {
		if _, ok := a.jobs[as.Job]; ok {
			a.srv.Stop(as.Job)
			delete(a.jobs, as.Job)
		}
		return nil
	}
	e, serving := a.jobs[as.Job]
	if serving && e == as.Epoch {
		return nil // a re-delivery
	}
	spec, err := jobspec.Parse([]byte(as.Spec))
	if err != nil {
		return err
	}
	if as.Reset { // a server was replaced: every range restarts at FromStep
		theta, opt, err := a.startState(ctx, as, spec)
		if err != nil {
			return err
		}
		if serving {
			a.srv.Stop(as.Job)
			delete(a.jobs, as.Job)
		}
		if err := a.srv.Serve(a.assignment(as, spec), theta, opt); err != nil {
			return err
		}
		a.jobs[as.Job] = as.Epoch
		return nil
	}
	if serving { // a new membership epoch: the workers changed
		if err := a.srv.Reconfigure(a.assignment(as, spec)); err != nil {
			return err
		}
		a.jobs[as.Job] = as.Epoch
		return nil
	}
	if as.FromStep > 0 {
		// An epoch that goes on from a step the other ranges hold, sent to
		// this process, which holds nothing: it restarted after the
		// coordinator last heard it serve the job (an assignment retried
		// across the restart). Starting the range afresh would be wrong.
		return fmt.Errorf("%w: %s's epoch %d goes on from step %d, and this server does not serve it", member.ErrNotHeld, as.Job, as.Epoch, as.FromStep)
	}
	if as.Rank < 0 || as.Rank >= len(as.Ranges) {
		return fmt.Errorf("server index %d of %d ranges", as.Rank, len(as.Ranges))
	}
	theta, err := a.initialTheta(ctx, as, spec, as.Ranges[as.Rank])
	if err != nil {
		return err
	}
	if err := a.srv.Serve(a.assignment(as, spec), theta, nil); err != nil {
		return err
	}
	a.jobs[as.Job] = as.Epoch
	return nil
}

// assignment is the server's Assignment for the coordinator's as.
func (a *Agent) assignment(as *wire.Assignment, spec *jobspec.Spec) Assignment {
	asg := Assignment{Job: as.Job, Server: as.Rank, Ranges: as.Ranges, ChunkFloats: as.ChunkFloats, Epoch: as.Epoch,
		Members: as.Members, MemberIDs: as.MemberIDs, Groups: as.Groups, FromStep: as.FromStep, Optimizer: spec.Optimizer, Schedule: spec.Schedule,
		StepsPerEpoch: int(as.StepsPerEpoch), TotalSteps: int(as.StepsPerEpoch) * spec.Epochs,
		CheckpointEvery: spec.Checkpoints(), MaxBadSteps: spec.BadSteps(), ParamEnc: spec.ParamEncoding(), LastStep: as.TotalSteps}
	if as.BarrierTimeoutMS > 0 {
		asg.BarrierTimeout = time.Duration(as.BarrierTimeoutMS) * time.Millisecond
	}
	return asg
}

// initialTheta is range r of θ_0: the job's initial weights (as.Init, from
// the checkpoint bucket) or, without them, the seed's initialisation, a
// pure function of the spec.
func (a *Agent) initialTheta(ctx context.Context, as *wire.Assignment, spec *jobspec.Spec, r wire.Range) ([]float32, error) {
	m, err := nn.Build(spec.Model, tensor.Reference)
	if err != nil {
		return nil, err
	}
	m.Init(spec.Seed)
	if as.Init != "" {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		data, err := a.srv.cfg.Checkpointer.Load(ctx, wire.CheckpointBucket, as.Init)
		if err != nil {
			return nil, fmt.Errorf("job %s: initial weights: %w", as.Job, err)
		}
		f, err := safetensors.Decode(data)
		if err != nil {
			return nil, fmt.Errorf("job %s: initial weights %s: %w", as.Job, as.Init, err)
		}
		if err := m.SetWeights(f); err != nil {
			return nil, fmt.Errorf("job %s: initial weights %s: %w", as.Job, as.Init, err)
		}
	}
	if r.Lo < 0 || r.Hi > len(m.Params) || r.Lo > r.Hi {
		return nil, fmt.Errorf("range %v past the model's %d parameters", r, len(m.Params))
	}
	return m.Params[r.Lo:r.Hi], nil
}

// startState is the range's θ and optimizer at as.FromStep for a reset:
// read from the checkpoint as.Restore, or the seed's θ_0 and a fresh
// optimizer when there is none yet.
func (a *Agent) startState(ctx context.Context, as *wire.Assignment, spec *jobspec.Spec) ([]float32, nn.Optimizer, error) {
	if as.Rank < 0 || as.Rank >= len(as.Ranges) {
		return nil, nil, fmt.Errorf("server index %d of %d ranges", as.Rank, len(as.Ranges))
	}
	r := as.Ranges[as.Rank]
	if as.Restore == "" {
		if as.FromStep != 0 {
			return nil, nil, fmt.Errorf("job %s: restarting at step %d needs that step's checkpoint", as.Job, as.FromStep)
		}
		theta, err := a.initialTheta(ctx, as, spec, r)
		return theta, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	data, err := a.srv.cfg.Checkpointer.Load(ctx, wire.CheckpointBucket, as.Restore)
	if err != nil {
		return nil, nil, err
	}
	theta, state, step, optStep, err := DecodeCheckpoint(data)
	switch {
	case err != nil:
		return nil, nil, fmt.Errorf("checkpoint %s: %w", as.Restore, err)
	case step != as.FromStep:
		return nil, nil, fmt.Errorf("checkpoint %s holds step %d, not %d", as.Restore, step, as.FromStep)
	case len(theta) != r.Len():
		return nil, nil, fmt.Errorf("checkpoint %s holds %d parameters, the range %v needs %d", as.Restore, len(theta), r, r.Len())
	}
	opt, err := nn.NewOptimizer(spec.Optimizer, r.Len())
	if err != nil {
		return nil, nil, err
	}
	cur, _ := opt.State()
	for name, v := range cur {
		src, ok := state[name]
		if !ok || len(src) != len(v) {
			return nil, nil, fmt.Errorf("checkpoint %s: optimizer state %q is missing or has the wrong size", as.Restore, name)
		}
		copy(v, src)
	}
	opt.SetStep(optStep)
	return theta, opt, nil
}
