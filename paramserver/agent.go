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

// Step is the step whose θ the server holds for job (for heartbeats).
func (a *Agent) Step(job string) int64 {
	st, _ := a.srv.Stats(job)
	return st.Step
}

// Assign starts serving a job's range from its seeded initial parameters,
// or stops serving it.
func (a *Agent) Assign(as *wire.Assignment) error {
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
	if serving { // a new membership epoch: the workers changed
		if err := a.srv.Reconfigure(a.assignment(as, spec)); err != nil {
			return err
		}
		a.jobs[as.Job] = as.Epoch
		return nil
	}
	m, err := nn.Build(spec.Model, tensor.Reference)
	if err != nil {
		return err
	}
	m.Init(spec.Seed) // θ_0 is a pure function of the spec and seed
	if as.Rank < 0 || as.Rank >= len(as.Ranges) {
		return fmt.Errorf("server index %d of %d ranges", as.Rank, len(as.Ranges))
	}
	r := as.Ranges[as.Rank]
	if r.Hi > len(m.Params) {
		return fmt.Errorf("range %v past the model's %d parameters", r, len(m.Params))
	}
	if err := a.srv.Serve(a.assignment(as, spec), m.Params[r.Lo:r.Hi], nil); err != nil {
		return err
	}
	a.jobs[as.Job] = as.Epoch
	return nil
}

// assignment is the server's Assignment for the coordinator's as.
func (a *Agent) assignment(as *wire.Assignment, spec *jobspec.Spec) Assignment {
	asg := Assignment{Job: as.Job, Server: as.Rank, Ranges: as.Ranges, ChunkFloats: as.ChunkFloats, Epoch: as.Epoch,
		Members: as.Members, FromStep: as.FromStep, Optimizer: spec.Optimizer, Schedule: spec.Schedule,
		StepsPerEpoch: int(as.StepsPerEpoch), TotalSteps: int(as.StepsPerEpoch) * spec.Epochs,
		CheckpointEvery: spec.Checkpoints(), MaxBadSteps: spec.BadSteps()}
	if as.BarrierTimeoutMS > 0 {
		asg.BarrierTimeout = time.Duration(as.BarrierTimeoutMS) * time.Millisecond
	}
	return asg
}
