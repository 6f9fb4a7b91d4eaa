package paramserver_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/maas-ml/maas/internal/wire"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/paramserver"
)

// aggFixture serves the 10-float range of fixture to three ranks, w0 and
// w1 on one host (aggregator w0) and w2 on another, with SGD at lr 1.
func aggFixture(t *testing.T) *fixture {
	return newFixtureOpt(t, 30*time.Second, 3, nn.OptimizerSpec{Type: "sgd", LR: 1}, func(a *paramserver.Assignment) {
		a.Members, a.MemberIDs, a.Groups = 3, []string{"w0", "w1", "w2"}, []int{0, 0, 2}
	})
}

// pushChunk pushes g to job j as worker id (in epoch 1 when g has none)
// and returns the server's ack.
func (f *fixture) pushChunk(id string, g wire.GradChunk) wire.Ack {
	f.t.Helper()
	g.V, g.Job = wire.Version, "j"
	if g.Epoch == 0 {
		g.Epoch = 1
	}
	b, _ := wire.Encode(&g)
	m, err := f.nc.Request(wire.GradSubject("j", 0, id), b, 2*time.Second)
	if err != nil {
		f.t.Fatal(err)
	}
	var ack wire.Ack
	if err := wire.Decode(m.Data, &ack); err != nil {
		f.t.Fatal(err)
	}
	return ack
}

// chunkLen is the length of chunk c of the 10-float range in chunks of 4.
func chunkLen(c int) int { return min(4, 10-4*c) }

// TestAggregatedPushes: a host aggregator's push, the mean of its host's
// ranks, weighs in by their samples: θ_1 equals the weighted sum of the
// three ranks' gradients; pushes covering ranks of another host, with
// counts that do not add up, or as another rank's aggregate are refused;
// an aggregate covering a rank the server has from the rank itself is a
// conflict, after which the aggregator's rank-by-rank pushes complete the
// step.
func TestAggregatedPushes(t *testing.T) {
	f := aggFixture(t)
	g0, g1, g2 := float32(1), float32(2), float32(3)
	n0, n1, n2 := 2, 6, 4
	mean := (float32(n0)*g0 + float32(n1)*g1) / float32(n0+n1)
	for _, bad := range []struct {
		id   string
		g    wire.GradChunk
		want string
	}{
		{"w0", wire.GradChunk{Rank: 0, N: 6, Chunk: 0, Covers: []int{0, 2}, Ns: []int{2, 4}, Data: wire.AppendFloats(nil, fill(4, 1))}, "not of rank 0's host"},
		{"w0", wire.GradChunk{Rank: 0, N: 9, Chunk: 0, Covers: []int{0, 1}, Ns: []int{2, 6}, Data: wire.AppendFloats(nil, fill(4, 1))}, "sum to 8"},
		{"w0", wire.GradChunk{Rank: 0, N: 8, Chunk: 0, Covers: []int{1, 0}, Ns: []int{6, 2}, Data: wire.AppendFloats(nil, fill(4, 1))}, "not ascending"},
		{"w1", wire.GradChunk{Rank: 0, N: 8, Chunk: 0, Covers: []int{0, 1}, Ns: []int{2, 6}, Data: wire.AppendFloats(nil, fill(4, 1))}, "worker w0's"},
		{"w2", wire.GradChunk{Rank: 1, N: 6, Chunk: 0, Data: wire.AppendFloats(nil, fill(4, 1))}, "worker w1's"},
	} {
		if ack := f.pushChunk(bad.id, bad.g); ack.Code != wire.AckRejected || !strings.Contains(ack.Reason, bad.want) {
			t.Errorf("%s pushing %+v: %s %q, want rejected with %q", bad.id, bad.g.Covers, ack.Code, ack.Reason, bad.want)
		}
	}
	// Chunk 0: w1 pushed its own before its aggregator's push came.
	if ack := f.pushChunk("w1", wire.GradChunk{Rank: 1, N: n1, Chunk: 0, Data: wire.AppendFloats(nil, fill(4, g1))}); ack.Code != wire.AckOK {
		t.Fatalf("w1's own push: %s %s", ack.Code, ack.Reason)
	}
	for c := range 3 {
		ack := f.pushChunk("w0", wire.GradChunk{Rank: 0, N: n0 + n1, Chunk: c, Covers: []int{0, 1}, Ns: []int{n0, n1},
			Data: wire.AppendFloats(nil, fill(chunkLen(c), mean))})
		want := wire.AckOK
		if c == 0 {
			want = wire.AckConflict
		}
		if ack.Code != want {
			t.Fatalf("w0's aggregate of chunk %d: %s %q, want %s", c, ack.Code, ack.Reason, want)
		}
	}
	// The aggregator pushes chunk 0 rank by rank: w0's own, w1's again.
	if ack := f.pushChunk("w0", wire.GradChunk{Rank: 0, N: n0, Chunk: 0, Data: wire.AppendFloats(nil, fill(4, g0))}); ack.Code != wire.AckOK {
		t.Fatalf("w0's own chunk 0: %s %s", ack.Code, ack.Reason)
	}
	if ack := f.pushChunk("w0", wire.GradChunk{Rank: 1, N: n1, Chunk: 0, Data: wire.AppendFloats(nil, fill(4, g1))}); ack.Code != wire.AckDuplicate {
		t.Fatalf("w1's chunk 0 again, from its aggregator: %s %s", ack.Code, ack.Reason)
	}
	for c := range 3 {
		if ack := f.pushChunk("w2", wire.GradChunk{Rank: 2, N: n2, Chunk: c, Data: wire.AppendFloats(nil, fill(chunkLen(c), g2))}); ack.Code != wire.AckOK {
			t.Fatalf("w2 chunk %d: %s %s", c, ack.Code, ack.Reason)
		}
	}
	theta := f.collect(1)
	total := float64(n0 + n1 + n2)
	want := -(float64(n0)*float64(g0) + float64(n1)*float64(g1) + float64(n2)*float64(g2)) / total
	for i, v := range theta {
		if math.Abs(float64(v)-want) > 1e-6 {
			t.Fatalf("θ_1[%d] = %g, want %g", i, v, want)
		}
	}
}
