package testcluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/wire"
	"github.com/maas-ml/maas/paramserver"
	"github.com/maas-ml/maas/tensor"
	"github.com/maas-ml/maas/worker"
)

// TestSyncSGDEquivalenceHostAggregation: with the workers of each host
// summing their gradients before one push per host (two hosts of two
// workers, one host of three, with one and two parameter servers), 20
// steps reach the parameters of one process, as without aggregation.
func TestSyncSGDEquivalenceHostAggregation(t *testing.T) {
	spec, err := jobspec.Load("../../examples/mnist-cnn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	compareWithOneProcess(t, spec, nil, 20, []StaticJob{
		{ID: "agg-4-1", Workers: 4, Servers: 1, Groups: []int{0, 0, 2, 2}},
		{ID: "agg-3-2", Workers: 3, Servers: 2, Groups: []int{0, 0, 0}},
		{ID: "agg-3-1", Workers: 3, Servers: 1, Groups: []int{0, 1, 1}},
	})
}

// TestHostAggregationPushesPerHost: with aggregation the parameter server
// receives one push per host and chunk, each covering the host's ranks;
// with compression the aggregator sends the host's sum in the job's
// encoding (the workers send it float32).
func TestHostAggregationPushesPerHost(t *testing.T) {
	plain, err := jobspec.Load("../../examples/mnist-cnn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bf16 := *plain
	bf16.Compression = &jobspec.Compression{Type: "bf16"}
	data := mnistOrSkip(t)
	b := tensor.NewGo(2)
	defer b.Close()
	s := StartNATS(t)
	for _, c := range []struct {
		id    string
		spec  *jobspec.Spec
		bytes int // per float on the wire
	}{{"aggpush", plain, 4}, {"aggbf16", &bf16, 2}} {
		t.Run(c.id, func(t *testing.T) {
			watch := Connect(t, s)
			senders := make(chan string, 1024)
			if _, err := watch.Subscribe(wire.GradSubjects(c.id, 0), func(m *nats.Msg) {
				var g wire.GradChunk
				if wire.Decode(m.Data, &g) == nil {
					senders <- fmt.Sprintf("%s:%v:%d", wire.MemberOf(m.Subject), g.Covers, len(g.Data)/c.bytes)
				}
			}); err != nil {
				t.Fatal(err)
			}
			watch.Flush()
			if _, err := RunStatic(t, s, StaticJob{ID: c.id, Spec: c.spec, Data: data, Workers: 4, Servers: 1, Steps: 2, Backend: b,
				ChunkSize: 100000, Groups: []int{0, 0, 2, 2}}); err != nil {
				t.Fatal(err)
			}
			watch.Flush()
			time.Sleep(100 * time.Millisecond)
			close(senders)
			count := map[string]int{}
			for s := range senders {
				count[s]++
			}
			// 241,546 floats in chunks of 100,000: two full, one of 41,546.
			want := map[string]int{}
			for _, host := range []string{"rank-0:[0 1]", "rank-2:[2 3]"} {
				want[host+":100000"], want[host+":41546"] = 2*2, 2
			}
			if fmt.Sprint(count) != fmt.Sprint(want) {
				t.Errorf("pushes to the parameter server by sender, covered ranks and floats: %v, want %v", count, want)
			}
		})
	}
}

// lostWorkerReport runs job (some ranks never starting) until its
// parameter server reports missing ranks, and returns them.
func lostWorkerReport(t *testing.T, job StaticJob) []int {
	t.Helper()
	s := StartNATS(t)
	watch := Connect(t, s)
	reports := make(chan wire.Report, 16)
	if _, err := watch.Subscribe(wire.ReportSubject("*"), func(m *nats.Msg) {
		var r wire.Report
		if wire.Decode(m.Data, &r) == nil && r.Kind == "missing" {
			reports <- r
		}
	}); err != nil {
		t.Fatal(err)
	}
	watch.Flush()
	ctx, cancel := context.WithCancel(context.Background())
	job.Context = ctx
	job.Server = func(c *paramserver.Config) { c.BarrierTimeout = 3 * time.Second }
	done := make(chan error, 1)
	go func() {
		_, err := RunStatic(t, s, job)
		done <- err
	}()
	var missing []int
	select {
	case r := <-reports:
		missing = r.Missing
	case <-time.After(60 * time.Second):
		t.Error("no barrier report")
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("the running workers: %v", err)
	}
	return missing
}

// TestHostAggregationLosses: a worker of a host that never pushes is left
// out of its host's push after the aggregation wait, and the parameter
// server reports that worker alone missing (so the coordinator replaces
// it, not its host); the workers of a host whose aggregator never runs
// push their own gradients, and the server reports the aggregator alone.
func TestHostAggregationLosses(t *testing.T) {
	spec, err := jobspec.Load("../../examples/mnist-cnn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data := mnistOrSkip(t)
	b := tensor.NewGo(1)
	defer b.Close()
	for _, c := range []struct {
		what    string
		running []int
		cfg     func(rank int, c *worker.Config)
		missing []int
	}{
		{"a worker lost", []int{0, 1}, func(rank int, c *worker.Config) { c.AggregateWait = 300 * time.Millisecond }, []int{2}},
		{"the aggregator lost", []int{1, 2}, func(rank int, c *worker.Config) { c.PushRetries, c.PushTimeout = 1, time.Second }, []int{0}},
	} {
		t.Run(c.what, func(t *testing.T) {
			missing := lostWorkerReport(t, StaticJob{ID: "agglost", Spec: spec, Data: data, Workers: 3, Servers: 1, Steps: 5, Backend: b,
				ChunkSize: 50000, Groups: []int{0, 0, 0}, Ranks: c.running, Worker: c.cfg})
			if !slices.Equal(missing, c.missing) {
				t.Errorf("the server reported ranks %v missing, want %v", missing, c.missing)
			}
		})
	}
}

// TestHostAggregatorKilled kills the host aggregator of a job aggregating
// per host (the embedded cluster's workers share one host; the aggregator
// is rank 0, w-1) mid-epoch: the other workers push their own gradients,
// the coordinator replaces the lost aggregator as it does any worker (a new
// membership epoch, the step redone, w-2 aggregating), and the model is as
// good as the fault-free run's.
func TestHostAggregatorKilled(t *testing.T) {
	againstFaultFree(t, faultRun{
		what: "with the host aggregator lost", opts: Options{Coordinators: 1, Servers: 1, Workers: 3},
		spec: twoEpochs + "aggregation: host\n", workers: 3, servers: 1,
		fault: func(c *Cluster, id string) {
			c.WaitForStep(id, 30, 60*time.Second)
			c.Kill("w-1")
		},
		check: endsIn(2, false, "w-2", "w-3"),
	})
}
