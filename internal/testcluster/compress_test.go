package testcluster

import (
	"context"
	"math"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/train"
	"github.com/maas-ml/maas/internal/wire"
	"github.com/maas-ml/maas/tensor"
)

// TestCompressedSteps: with each compression the cluster trains (4
// workers, 2 parameter servers; topk also aggregating per host) near the
// uncompressed run of one process: after 15 Adam steps on real MNIST, θ's
// distance from it, relative to how far θ moved, stays within the mode's
// bound; θ must have moved at least 0.15 as far (topk sends a hundredth
// of each bucket a step, and catches up through its error feedback over
// far more than 15 steps). The workers agree on θ (RunStatic
// checks), and θ's
// fan-out after each step is its change in the job's encoding: half the
// bytes of float32 for fp16 and bf16, a quarter for int8 and topk.
func TestCompressedSteps(t *testing.T) {
	spec, err := jobspec.Load("../../examples/mnist-cnn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data := mnistOrSkip(t)
	b := tensor.NewGo(2)
	defer b.Close()
	const steps = 15
	tr, err := train.New(spec, b, data)
	if err != nil {
		t.Fatal(err)
	}
	theta0 := append([]float32(nil), tr.Model.Params...)
	if _, err := tr.Run(context.Background(), train.Options{MaxSteps: steps}); err != nil {
		t.Fatal(err)
	}
	want := tr.Model.Params
	s := StartNATS(t)
	for _, c := range []struct {
		typ    string
		groups []int
		bound  float64 // |θ − θ_one| / |θ_one − θ_0| (Euclidean)
		fanout float64 // fan-out bytes against float32, at most
	}{
		{"fp16", nil, 1e-3, 0.51},
		{"bf16", nil, 4e-3, 0.51},
		{"int8", nil, 0.2, 0.26},
		{"topk", []int{0, 0, 2, 2}, 1.5, 0.26},
	} {
		t.Run(c.typ, func(t *testing.T) {
			sp := *spec
			sp.Compression = &jobspec.Compression{Type: c.typ}
			job := "c" + c.typ
			watch := Connect(t, s)
			var mu sync.Mutex
			var deltaBytes, deltaFloats int
			if _, err := watch.Subscribe(wire.ParamSubject(job), func(m *nats.Msg) {
				var pc wire.ParamChunk
				if wire.Decode(m.Data, &pc) == nil && pc.Delta {
					mu.Lock()
					deltaBytes += len(pc.Data)
					deltaFloats += map[bool]int{true: 50000, false: 241546/2 - 100000}[pc.Chunk < 2]
					mu.Unlock()
				}
			}); err != nil {
				t.Fatal(err)
			}
			watch.Flush()
			got, err := RunStatic(t, s, StaticJob{ID: job, Spec: &sp, Data: data, Workers: 4, Servers: 2, Steps: steps, Backend: b,
				ChunkSize: 50000, Groups: c.groups})
			if err != nil {
				t.Fatal(err)
			}
			var diff, moved, own float64
			for i := range want {
				d, m, o := float64(got[i]-want[i]), float64(want[i]-theta0[i]), float64(got[i]-theta0[i])
				diff += d * d
				moved += m * m
				own += o * o
			}
			diff, moved, own = math.Sqrt(diff), math.Sqrt(moved), math.Sqrt(own)
			t.Logf("%s: |θ − θ_one| / |θ_one − θ_0| = %.3g; θ moved %.3g as far", c.typ, diff/moved, own/moved)
			if !(diff/moved <= c.bound) || !(own/moved >= 0.15) {
				t.Errorf("%s: θ is %.3g (relative to its movement) from one process's (bound %g) and moved %.3g as far", c.typ, diff/moved, c.bound, own/moved)
			}
			watch.Flush()
			mu.Lock()
			defer mu.Unlock()
			// Every step's θ but the last goes out as a change.
			if wantFloats := (steps - 1) * 241546; deltaFloats != wantFloats {
				t.Fatalf("%d floats fanned out as changes, want %d", deltaFloats, wantFloats)
			}
			if r := float64(deltaBytes) / float64(4*deltaFloats); r > c.fanout {
				t.Errorf("fan-out of changes: %.3f of float32's bytes, want at most %g", r, c.fanout)
			}
		})
	}
}
