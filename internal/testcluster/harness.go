package testcluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/natsserver"
	"github.com/maas-ml/maas/internal/train"
	"github.com/maas-ml/maas/internal/wire"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/paramserver"
	"github.com/maas-ml/maas/tensor"
	"github.com/maas-ml/maas/worker"
)

// StartNATS starts an embedded NATS server with JetStream on a free
// loopback port, stopped when the test ends.
func StartNATS(t testing.TB) *server.Server {
	t.Helper()
	c := natsserver.DefaultConfig()
	c.Port = -1
	c.StoreDir = t.TempDir()
	s, err := natsserver.Start(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// Connect opens a NATS connection closed when the test ends.
func Connect(t testing.TB, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// StaticJob describes a job run on fixed membership without a coordinator.
type StaticJob struct {
	ID        string
	Spec      *jobspec.Spec
	Data      *dataset.Dataset
	Workers   int // K
	Servers   int // P
	Steps     int64
	Backend   tensor.Backend
	ChunkSize int // floats per chunk; 0 for the default
	// Init, when set, is θ_0 (else the spec's seeded initialisation).
	Init []float32
	// Worker, when set, adjusts each worker's config (hooks, timeouts).
	Worker func(rank int, c *worker.Config)
	// Server adjusts each parameter server's config.
	Server func(c *paramserver.Config)
	// Groups, when set, aggregates per host: Groups[r] is rank r's host
	// aggregator (see wire.Assignment); the workers' ids are rank-<r>.
	Groups []int
	// Ranks, when set, are the ranks that run (the others never start:
	// lost workers); RunStatic then runs until Context ends and returns
	// no θ.
	Ranks   []int
	Context context.Context
}

// memberIDs are the default worker ids rank-0 … rank-(k−1).
func memberIDs(k int) []string {
	ids := make([]string, k)
	for r := range ids {
		ids[r] = fmt.Sprintf("rank-%d", r)
	}
	return ids
}

// RunStatic trains job on s with K workers and P parameter servers, each
// with its own NATS connection, from job.Init or the model's seeded
// initialisation, and returns θ after job.Steps steps as every worker holds
// it (they must agree).
func RunStatic(t testing.TB, s *server.Server, job StaticJob) ([]float32, error) {
	t.Helper()
	m, err := nn.Build(job.Spec.Model, job.Backend)
	if err != nil {
		return nil, err
	}
	m.Init(job.Spec.Seed)
	if job.Init != nil {
		if len(job.Init) != len(m.Params) {
			return nil, fmt.Errorf("job.Init holds %d parameters, the model has %d", len(job.Init), len(m.Params))
		}
		copy(m.Params, job.Init)
	}
	spe := (job.Data.N + job.Spec.BatchSize - 1) / job.Spec.BatchSize
	ranges := wire.Split(len(m.Params), job.Servers)
	for p := range job.Servers {
		cfg := paramserver.DefaultConfig()
		if job.Server != nil {
			job.Server(&cfg)
		}
		ps := paramserver.New(Connect(t, s), cfg)
		a := paramserver.Assignment{Job: job.ID, Server: p, Ranges: ranges, ChunkFloats: job.ChunkSize, Epoch: 1,
			Members: job.Workers, Optimizer: job.Spec.Optimizer, Schedule: job.Spec.Schedule,
			StepsPerEpoch: spe, TotalSteps: job.Spec.Epochs * spe, ParamEnc: job.Spec.ParamEncoding(), LastStep: job.Steps}
		if job.Groups != nil {
			a.Groups, a.MemberIDs = job.Groups, memberIDs(job.Workers)
		}
		if err := ps.Serve(a, m.Params[ranges[p].Lo:ranges[p].Hi], nil); err != nil {
			return nil, err
		}
		t.Cleanup(func() { ps.Stop(job.ID) })
	}
	parent := job.Context
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	results := make([]*nn.Model, job.Workers)
	errs := make([]error, job.Workers)
	var wg sync.WaitGroup
	ranks := job.Ranks
	if ranks == nil {
		for r := range job.Workers {
			ranks = append(ranks, r)
		}
	}
	for _, r := range ranks {
		cfg := worker.DefaultConfig()
		cfg.Backend = job.Backend
		if job.Worker != nil {
			job.Worker(r, &cfg)
		}
		w := worker.New(Connect(t, s), cfg)
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := worker.Assignment{Job: job.ID, Spec: job.Spec, Epoch: 1, Rank: r,
				Members: job.Workers, Ranges: ranges, ChunkFloats: job.ChunkSize, TotalSteps: job.Steps}
			if job.Groups != nil {
				a.Groups, a.MemberIDs = job.Groups, memberIDs(job.Workers)
			}
			results[r], errs[r] = w.Run(ctx, a, train.Images{D: job.Data, Norm: job.Spec.Normalization()})
			if errs[r] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil || job.Ranks != nil {
		return nil, err
	}
	for r := 1; r < job.Workers; r++ {
		for i, v := range results[r].Params {
			if v != results[0].Params[i] {
				return nil, fmt.Errorf("worker %d holds θ[%d] = %g, worker 0 %g", r, i, v, results[0].Params[i])
			}
		}
	}
	return results[0].Params, nil
}

// ConnectURL opens a NATS connection to url, closed when the test ends.
func ConnectURL(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}
