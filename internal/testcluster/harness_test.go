package testcluster

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/maas-ml/maas/coordinator"
	"github.com/maas-ml/maas/internal/api"
)

// TestHarnessLeaderLossAndWorkerLoss drives the harness: three
// coordinators, two parameter servers, two workers. A job runs through a
// follower; the leader is killed mid-job and a new one is elected while the
// data plane keeps training; then a worker is killed and the job goes on
// with the other one in a new membership epoch; when that one is killed
// too the job fails with the reason, instead of hanging.
func TestHarnessLeaderLossAndWorkerLoss(t *testing.T) {
	mnistOrSkip(t)
	c := Start(t, Options{Coordinators: 3, Servers: 2, Workers: 2})
	spec := strings.Replace(e2eSpec, "epochs: 1", "epochs: 30", 1)
	id := c.Submit(spec, 2, 2)
	c.WaitForStep(id, 5, 30*time.Second)
	// The history the first leader wrote: events and metric points.
	ctx := context.Background()
	var before api.JobMetrics
	c.WaitFor("three metric points", 20*time.Second, func() bool {
		m, err := c.API().Metrics(ctx, id)
		before = m
		return err == nil && len(m.Points) >= 3
	})
	events, err := c.API().Logs(ctx, id, 0)
	if err != nil || len(events.Entries) < 2 {
		t.Fatalf("before the leader change: %d events, err %v", len(events.Entries), err)
	}
	for i, p := range before.Points {
		if !(p.Loss > 0) || !(p.SamplesPerSec > 0) || !(p.StepMS > 0) || p.LR != 0.01 || p.Step%2 != 1 || i > 0 && p.Step <= before.Points[i-1].Step {
			t.Fatalf("metric point %d: %+v (want a loss, samples/s, a step time, lr 0.01, every other step from step 1)", i, p)
		}
	}

	old, oldID := c.Leader(), c.LeaderID()
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
	// Nothing of the history is lost, and the new leader adds to it.
	var after api.JobMetrics
	c.WaitFor("metric points from the new leader", 20*time.Second, func() bool {
		m, err := c.API().Metrics(ctx, id)
		after = m
		return err == nil && len(m.Points) > len(before.Points)
	})
	if !slices.Equal(after.Points[:len(before.Points)], before.Points) {
		t.Errorf("the metric points before the leader change differ after it")
	}
	again, err := c.API().Logs(ctx, id, 0)
	if err != nil || len(again.Entries) < len(events.Entries) || !slices.Equal(again.Entries[:len(events.Entries)], events.Entries) {
		t.Fatalf("after the leader change the events are %v (err %v), want %v first", again.Entries, err, events.Entries)
	}
	if tail, err := c.API().Logs(ctx, id, events.Entries[len(events.Entries)-1].Seq); err != nil || len(tail.Entries) != len(again.Entries)-len(events.Entries) {
		t.Errorf("the events after the last seen: %d (err %v), want %d", len(tail.Entries), err, len(again.Entries)-len(events.Entries))
	}

	c.Kill("w-2")
	killed := time.Now()
	c.WaitFor("membership epoch 2 without w-2", 15*time.Second, func() bool {
		js, _ = c.job(id)
		return js.Epoch == 2 || api.Terminal(js.State)
	})
	if js.State != api.JobRunning || !slices.Equal(js.Members, []string{"w-1"}) {
		t.Fatalf("after losing w-2 the job is %s in epoch %d with %v: %q", js.State, js.Epoch, js.Members, js.Reason)
	}
	t.Logf("membership epoch 2 %v after the worker died", time.Since(killed).Round(time.Millisecond))
	c.WaitForStep(id, js.Step+5, 20*time.Second) // and it trains on

	c.Kill("w-1")
	js = c.WaitJob(id, 30*time.Second)
	if js.State != api.JobFailed || !strings.Contains(js.Reason, "every worker was lost") || !strings.Contains(js.Reason, "w-1") {
		t.Fatalf("after losing the last worker the job is %s: %q", js.State, js.Reason)
	}
	// The whole story is in the history: the start, the membership change
	// and the failure with its reason (read as `maas job logs --follow`
	// does: until the page says the job is done).
	var all api.LogPage
	c.WaitFor("the job's events, to its end", 15*time.Second, func() bool {
		all, err = c.API().Logs(ctx, id, 0)
		return err == nil && all.Done
	})
	var text []string
	for _, e := range all.Entries {
		text = append(text, e.Message)
	}
	joined := strings.Join(text, "\n")
	for _, want := range []string{"started on workers", "w-2", "every worker was lost"} {
		if !strings.Contains(joined, want) {
			t.Errorf("the job's events lack %q:\n%s", want, joined)
		}
	}
}

// faultRun is one fault case: a cluster, a job of spec on workers and
// servers, a fault injected once the job runs, and a check of the
// finished job.
type faultRun struct {
	what             string // the fault, for messages
	opts             Options
	spec             string
	workers, servers int
	fault            func(c *Cluster, id string)
	check            func(js api.JobStatus) error
}

// againstFaultFree runs the job without and with the fault: both must
// succeed (the faulty one passing check), and the faulty run's model must
// be within 0.3 points of test accuracy of the fault-free one with the same
// seed.
func againstFaultFree(t *testing.T, r faultRun) {
	t.Helper()
	mnistOrSkip(t)
	accuracy := func(fault bool) float64 {
		c := Start(t, r.opts)
		id := c.Submit(r.spec, r.workers, r.servers)
		if fault {
			r.fault(c, id)
		}
		js := c.WaitJob(id, 120*time.Second)
		if js.State != api.JobSucceeded || js.Model == nil || fault && r.check(js) != nil {
			if page, err := c.API().Logs(context.Background(), id, 0); err == nil {
				for _, e := range page.Entries {
					t.Logf("job log: %s", e.Message)
				}
			}
		}
		if js.State != api.JobSucceeded || js.Model == nil {
			t.Fatalf("%s: job ended %s: %q", r.what, js.State, js.Reason)
		}
		if fault {
			if err := r.check(js); err != nil {
				t.Fatalf("%s: %v", r.what, err)
			}
		}
		return js.Model.Metrics["test_accuracy"]
	}
	clean, faulty := accuracy(false), accuracy(true)
	t.Logf("test accuracy: fault-free %.4f, %s %.4f", clean, r.what, faulty)
	if clean < 0.8 || math.Abs(clean-faulty) > 0.003 {
		t.Fatalf("test accuracy %.4f %s, %.4f without: want within 0.3 points", faulty, r.what, clean)
	}
}

// endsIn checks that a job ended in membership epoch with the workers (or,
// with servers set, the parameter servers) want.
func endsIn(epoch uint64, servers bool, want ...string) func(api.JobStatus) error {
	return func(js api.JobStatus) error {
		got, what := js.Members, "workers"
		if servers {
			got, what = js.Servers, "servers"
		}
		if js.Epoch != epoch || !slices.Equal(got, want) {
			return fmt.Errorf("the job ended in epoch %d with %s %v, want epoch %d with %v", js.Epoch, what, got, epoch, want)
		}
		return nil
	}
}

// afterCheckpoint waits until the job has committed a checkpoint of at
// least step (or ended).
func afterCheckpoint(c *Cluster, id string, step int64) {
	c.WaitFor("a committed checkpoint", 60*time.Second, func() bool {
		js, _ := c.job(id)
		return js.CommittedStep >= step || api.Terminal(js.State)
	})
}

// twoEpochs is the tiny job long enough to inject a fault into.
var twoEpochs = strings.Replace(e2eSpec, "epochs: 1", "epochs: 2", 1)

// TestWorkerLossResplits kills one of three workers mid-epoch: the job
// completes on the other two, and its model is as good as the fault-free
// run's with the same seed (the same samples, each once per epoch, at most
// one step redone).
func TestWorkerLossResplits(t *testing.T) {
	againstFaultFree(t, faultRun{
		what: "with a worker lost", opts: Options{Coordinators: 1, Servers: 2, Workers: 3}, spec: twoEpochs, workers: 3, servers: 2,
		fault: func(c *Cluster, id string) {
			c.WaitForStep(id, 30, 60*time.Second)
			c.Kill("w-2")
		},
		check: endsIn(2, false, "w-1", "w-3"),
	})
}

// TestWorkerPartitioned cuts a job's worker off the network (its NATS
// traffic held both ways) for longer than the member timeout: the leader
// declares it lost and the idle worker takes its place; after Heal the
// partitioned worker's held heartbeats and pushes of the old membership
// arrive, it is live again (idle, ready for work), and the job ends on the
// replacement with the fault-free run's model quality (the old epoch's
// pushes changed nothing).
func TestWorkerPartitioned(t *testing.T) {
	const memberTimeout = 2 * time.Second
	againstFaultFree(t, faultRun{
		what: "with a worker partitioned", spec: twoEpochs, workers: 2, servers: 2,
		opts: Options{Coordinators: 1, Servers: 2, Workers: 3, Coordinator: func(c *coordinator.Config) { c.MemberTimeout = memberTimeout }},
		fault: func(c *Cluster, id string) {
			c.WaitForStep(id, 30, 60*time.Second)
			c.Partition("w-2")
			cut := time.Now()
			c.WaitFor("w-3 in w-2's place", 20*time.Second, func() bool {
				js, _ := c.job(id)
				return slices.Equal(js.Members, []string{"w-1", "w-3"}) || api.Terminal(js.State)
			})
			// The timeout runs from w-2's last heartbeat, up to one
			// heartbeat period (1 s) before the cut.
			if took := time.Since(cut); took < memberTimeout-time.Second {
				t.Fatalf("w-2 replaced %v after the partition, before the %v member timeout less a heartbeat period", took, memberTimeout)
			}
			if st := memberState(c, "w-2"); st != "dead" {
				t.Fatalf("partitioned w-2 is %q, want dead", st)
			}
			t.Logf("w-3 replaced partitioned w-2 after %v", time.Since(cut).Round(time.Millisecond))
			c.WaitForStep(id, c.Job(id).Step+5, 30*time.Second) // trains on without it
			c.Heal("w-2")
			healed := time.Now()
			c.WaitFor("w-2 live again after Heal", 20*time.Second, func() bool {
				st := memberState(c, "w-2")
				return st == "idle" || st == "busy"
			})
			t.Logf("w-2 live again %v after Heal", time.Since(healed).Round(time.Millisecond))
		},
		check: func(js api.JobStatus) error {
			if !slices.Equal(js.Members, []string{"w-1", "w-3"}) {
				return fmt.Errorf("the job ended with workers %v in epoch %d, want [w-1 w-3]", js.Members, js.Epoch)
			}
			return nil
		},
	})
}

// memberState is a member's state in the cluster status ("" when not
// registered).
func memberState(c *Cluster, id string) string {
	cs, err := c.API().Cluster(context.Background())
	if err != nil {
		return ""
	}
	for _, m := range append(cs.Workers, cs.Servers...) {
		if m.ID == id {
			return m.State
		}
	}
	return ""
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

// TestServerLossRestoresCheckpoint kills one of two parameter servers
// mid-job with a standby present: the standby takes the lost range, every
// range restarts from the last committed checkpoint (θ, Adam state and
// step count), the workers go back to that step, and the job completes
// with the fault-free run's model quality.
func TestServerLossRestoresCheckpoint(t *testing.T) {
	againstFaultFree(t, faultRun{
		what: "with a parameter server lost", opts: Options{Coordinators: 1, Servers: 3, Workers: 2},
		spec: twoEpochs + "checkpoint_every: 20\n", workers: 2, servers: 2,
		fault: func(c *Cluster, id string) {
			afterCheckpoint(c, id, 40)
			c.Kill("ps-1")
		},
		check: endsIn(2, true, "ps-3", "ps-2"),
	})
}

// TestWorkerJoinsMidJob: after a worker is lost, a new worker that
// registers joins the job in the next membership epoch, and the job ends
// with the fault-free run's model quality.
func TestWorkerJoinsMidJob(t *testing.T) {
	againstFaultFree(t, faultRun{
		what: "with a worker lost and another joining", opts: Options{Coordinators: 1, Servers: 2, Workers: 2},
		spec: twoEpochs, workers: 2, servers: 2,
		fault: func(c *Cluster, id string) {
			c.WaitForStep(id, 30, 60*time.Second)
			c.Kill("w-2")
			c.WaitFor("epoch 2 without w-2", 15*time.Second, func() bool { js, _ := c.job(id); return js.Epoch >= 2 })
			c.StartWorker("w-3")
			c.WaitFor("w-3 to join", 15*time.Second, func() bool {
				js, _ := c.job(id)
				return slices.Equal(js.Members, []string{"w-1", "w-3"}) || api.Terminal(js.State)
			})
		},
		check: endsIn(3, false, "w-1", "w-3"),
	})
}

// TestNATSRestart takes the NATS server away for 5 s in the middle of a
// job: every process reconnects, no member is declared lost, and the job
// completes with the fault-free run's model quality (a step that lost
// messages is finished from retried pushes and pulls, never averaged with
// a gradient missing).
func TestNATSRestart(t *testing.T) {
	againstFaultFree(t, faultRun{
		what: "across a NATS restart", opts: Options{Coordinators: 1, Servers: 2, Workers: 2}, spec: twoEpochs, workers: 2, servers: 2,
		fault: func(c *Cluster, id string) {
			c.WaitForStep(id, 30, 60*time.Second)
			c.RestartNATS(5 * time.Second)
		},
		check: func(js api.JobStatus) error {
			if js.Epoch != 1 {
				return fmt.Errorf("the job changed membership (epoch %d, workers %v) over a NATS restart", js.Epoch, js.Members)
			}
			return nil
		},
	})
}

// TestNATSOutagePausesJob takes NATS away for 8 s, four times the job's
// barrier timeout: the coordinator pauses the job with a status naming
// NATS, no member is dropped (the waits count only connected time), and
// when NATS is back the job resumes in the same membership and ends with
// the fault-free run's model quality.
func TestNATSOutagePausesJob(t *testing.T) {
	var paused api.JobStatus
	var resumed bool
	againstFaultFree(t, faultRun{
		what: "across an 8 s NATS outage", opts: Options{Coordinators: 1, Servers: 2, Workers: 2},
		spec: twoEpochs + "barrier_timeout: 2s\nstep_timeout: 4s\n", workers: 2, servers: 2,
		fault: func(c *Cluster, id string) {
			c.WaitForStep(id, 30, 60*time.Second)
			watched := make(chan struct{})
			go func() { // the status, read over HTTP while NATS is away
				defer close(watched)
				for end := time.Now().Add(7 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
					if js, ok := c.job(id); ok && js.State == api.JobPaused {
						paused = js
						return
					}
				}
			}()
			c.RestartNATS(8 * time.Second)
			<-watched
			back := time.Now()
			c.WaitFor("the job running again", 15*time.Second, func() bool {
				js, ok := c.job(id)
				return ok && js.State != api.JobPaused
			})
			resumed = true
			t.Logf("resumed %v after NATS came back", time.Since(back).Round(time.Millisecond))
		},
		check: func(js api.JobStatus) error {
			switch {
			case paused.State != api.JobPaused:
				return errors.New("the job was never paused while NATS was away")
			case !strings.Contains(paused.Reason, "NATS unreachable") || !strings.Contains(paused.Reason, "2s"):
				return fmt.Errorf("paused with reason %q; want it to name NATS and the 2s barrier timeout", paused.Reason)
			case !resumed:
				return errors.New("the job did not resume")
			case js.Epoch != 1:
				return fmt.Errorf("the job changed membership (epoch %d, workers %v) over the outage", js.Epoch, js.Members)
			}
			return nil
		},
	})
}

// TestQuorumLoss: with 2 of 3 coordinators down, API calls fail with a
// "no quorum" error once their wait for a leader (2 s here) is over,
// instead of hanging; when one comes back, a leader is elected and calls
// succeed again.
func TestQuorumLoss(t *testing.T) {
	c := Start(t, Options{Coordinators: 3})
	leader := c.LeaderID()
	var down []string
	for _, id := range []string{"c1", "c2", "c3"} {
		if id != leader && len(down) < 2 {
			down = append(down, id)
		}
	}
	// Both followers: the leader is left without a majority.
	for _, id := range down {
		c.Kill(id)
	}
	waiting, err := api.NewClient(c.API().Server(), api.WithLeaderWait(2*time.Second, nil))
	if err != nil {
		t.Fatal(err)
	}
	for try := range 2 {
		start := time.Now()
		_, err := waiting.Submit(context.Background(), api.SubmitRequest{Spec: e2eSpec, Workers: 1, ParameterServers: 1})
		took := time.Since(start)
		if err == nil || took > 7*time.Second || !strings.Contains(err.Error(), "quorum") && !errors.Is(err, api.ErrNoLeader) {
			t.Fatalf("submit %d without a quorum: %v after %v; want a no-quorum error after the 2 s wait", try, err, took)
		}
		t.Logf("submit %d without a quorum failed after %v: %v", try, took.Round(time.Millisecond), err)
	}
	c.Restart(down[0])
	c.WaitFor("a leader again", 15*time.Second, func() bool {
		_, err := c.API().Submit(context.Background(), api.SubmitRequest{Spec: e2eSpec, Workers: 1, ParameterServers: 1})
		return err == nil
	})
}

// TestServerLossWithoutStandby: with no standby the job waits its own
// barrier_timeout (2 s here, not the cluster's 30 s) for one, then fails
// naming the server.
func TestServerLossWithoutStandby(t *testing.T) {
	mnistOrSkip(t)
	c := Start(t, Options{Coordinators: 1, Servers: 2, Workers: 1})
	spec := strings.Replace(e2eSpec, "epochs: 1", "epochs: 30", 1) + "barrier_timeout: 2s\nstep_timeout: 10s\n"
	id := c.Submit(spec, 1, 2)
	c.WaitForStep(id, 5, 60*time.Second)
	c.Kill("ps-2")
	killed := time.Now()
	js := c.WaitJob(id, 20*time.Second)
	if js.State != api.JobFailed || !strings.Contains(js.Reason, "ps-2") || !strings.Contains(js.Reason, "within 2s") {
		t.Fatalf("after losing ps-2 with no standby the job is %s: %q", js.State, js.Reason)
	}
	t.Logf("failed %v after the server died: %s", time.Since(killed).Round(time.Millisecond), js.Reason)
}

// TestWorkerRestartedSameID: a worker killed and started again at once
// under its id (as a service manager restarts it) heartbeats on with a new
// process incarnation; the leader drops it from the job at its first
// heartbeat (not after the servers' 30 s barrier), takes it back after
// its backoff, and the job ends with the fault-free run's model quality.
func TestWorkerRestartedSameID(t *testing.T) {
	againstFaultFree(t, faultRun{
		what: "with a worker restarted", opts: Options{Coordinators: 1, Servers: 2, Workers: 2}, spec: twoEpochs, workers: 2, servers: 2,
		fault: func(c *Cluster, id string) {
			c.WaitForStep(id, 30, 60*time.Second)
			c.Kill("w-2")
			c.StartWorker("w-2")
			restarted := time.Now()
			c.WaitFor("a membership without the restarted w-2", 10*time.Second, func() bool {
				js, ok := c.job(id)
				return ok && js.Epoch >= 2
			})
			t.Logf("new membership %v after the restart", time.Since(restarted).Round(time.Millisecond))
		},
		check: endsIn(3, false, "w-1", "w-2"),
	})
}

// TestServerRestartedSameID: a parameter server that restarts at once
// under its old id (as a service manager would restart it) heartbeats on
// with a new process incarnation and without its range; the leader treats
// it as lost, gives it its range again from the last checkpoint, and the
// job ends with the fault-free run's model quality.
func TestServerRestartedSameID(t *testing.T) {
	againstFaultFree(t, faultRun{
		what: "with a parameter server restarted", opts: Options{Coordinators: 1, Servers: 2, Workers: 2},
		spec: twoEpochs + "checkpoint_every: 20\n", workers: 2, servers: 2,
		fault: func(c *Cluster, id string) {
			afterCheckpoint(c, id, 40)
			c.Kill("ps-1")
			c.StartServer("ps-1")
		},
		check: endsIn(2, true, "ps-1", "ps-2"),
	})
}
