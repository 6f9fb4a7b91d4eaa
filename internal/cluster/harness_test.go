package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/maas-ml/maas/internal/api"
)

// TestHarnessLeaderLossAndWorkerLoss drives the harness: three
// coordinators, two parameter servers, two workers. A job runs through a
// follower; the leader is killed mid-job and a new one is elected while the
// data plane keeps training; then a worker is killed and the job fails
// within the member timeout with the worker named, instead of hanging.
func TestHarnessLeaderLossAndWorkerLoss(t *testing.T) {
	mnistOrSkip(t)
	c := Start(t, Options{Coordinators: 3, Servers: 2, Workers: 2})
	spec := strings.Replace(e2eSpec, "epochs: 1", "epochs: 30", 1)
	id := c.Submit(spec, 2, 2)
	c.WaitForStep(id, 5, 30*time.Second)

	old := c.Leader()
	var oldID string
	for _, n := range []string{"c1", "c2", "c3"} {
		if c.nodes[n] == old {
			oldID = n
		}
	}
	c.Kill(oldID)
	start := time.Now()
	c.WaitFor("a new leader", 10*time.Second, func() bool { l := c.Leader(); return l != nil && l != old })
	t.Logf("new leader after %v", time.Since(start).Round(time.Millisecond))
	// The job goes on under the new leader (which rebuilds progress from
	// the next reports).
	js := c.WaitForStep(id, 1, 20*time.Second)
	if js.State != api.JobRunning {
		t.Fatalf("after the leader change the job is %s: %s", js.State, js.Reason)
	}

	c.Kill("w-2")
	killed := time.Now()
	js = c.WaitJob(id, 30*time.Second)
	if js.State != api.JobFailed || !strings.Contains(js.Reason, "w-2") {
		t.Fatalf("after losing a worker the job is %s: %q", js.State, js.Reason)
	}
	t.Logf("job failed %v after the worker died: %s", time.Since(killed).Round(time.Millisecond), js.Reason)
}

// TestNonFiniteGradientsFailTheJob: a job whose parameters blow up has its
// non-finite steps skipped (parameters stay finite) and, past
// max_bad_steps, fails with that reason.
func TestNonFiniteGradientsFailTheJob(t *testing.T) {
	mnistOrSkip(t)
	c := Start(t, Options{Coordinators: 1, Servers: 1, Workers: 1})
	spec := strings.Replace(e2eSpec, "lr: 0.01", "lr: 1.0e+30", 1) + "max_bad_steps: 2\n"
	id := c.Submit(spec, 1, 1)
	js := c.WaitJob(id, 30*time.Second)
	if js.State != api.JobFailed || !strings.Contains(js.Reason, "non-finite") || !strings.Contains(js.Reason, "max_bad_steps 2") {
		t.Fatalf("job ended %s: %q", js.State, js.Reason)
	}
	t.Log(js.Reason)
}
