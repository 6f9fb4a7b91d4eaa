package coordinator

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/wire"
)

func apply(t *testing.T, f *FSM, c Command) ApplyResult {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return f.Apply(&raft.Log{Data: b}).(ApplyResult)
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func submit(t *testing.T, f *FSM, reqID string) string {
	t.Helper()
	r := apply(t, f, Command{Type: CmdSubmitJob, RequestID: reqID, Time: t0,
		Job: &JobRecord{Name: "mnist.cnn", Spec: "name: mnist.cnn", Workers: 2, ParameterServers: 1, NumParams: 10, StepsPerEpoch: 5, TotalSteps: 10}})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	return r.Value
}

func TestIdempotentCommands(t *testing.T) {
	f := NewFSM()
	id := submit(t, f, "req-1")
	if id != "mnist-cnn-1" {
		t.Fatalf("job id %q: want the name made subject-safe plus a sequence number", id)
	}
	if again := submit(t, f, "req-1"); again != id {
		t.Fatalf("a retried submit returned %q, want %q", again, id)
	}
	f.Read(func(st *State) {
		if len(st.Jobs) != 1 || st.JobSeq != 1 {
			t.Fatalf("a retried submit applied twice: %d jobs", len(st.Jobs))
		}
		if j := st.Jobs[id]; j.State != api.JobQueued || !j.Submitted.Equal(t0) {
			t.Fatalf("job %+v", j)
		}
	})
	if id2 := submit(t, f, "req-2"); id2 != "mnist-cnn-2" {
		t.Fatalf("second job id %q", id2)
	}
}

func TestJobLifecycleRules(t *testing.T) {
	f := NewFSM()
	id := submit(t, f, "")
	start := func(epoch uint64) ApplyResult {
		return apply(t, f, Command{Type: CmdStartJob, Time: t0, Start: &StartJob{Job: id, Membership: Membership{
			Epoch: epoch, Members: []string{"w1", "w2"}, Servers: []string{"p1"}, Ranges: []wire.Range{{Lo: 0, Hi: 10}}}}})
	}
	if r := start(1); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := start(1); !errors.Is(r.Err, ErrConflict) {
		t.Fatalf("the same epoch twice: %v", r.Err)
	}
	if r := apply(t, f, Command{Type: CmdStartJob, Start: &StartJob{Job: "nope"}}); !errors.Is(r.Err, ErrNotFound) {
		t.Fatalf("unknown job: %v", r.Err)
	}
	state := func() (st, reason string) {
		f.Read(func(s *State) { st, reason = s.Jobs[id].State, s.Jobs[id].Reason })
		return
	}
	pause := func(typ, reason string) ApplyResult {
		return apply(t, f, Command{Type: typ, Pause: &PauseJob{Job: id, Reason: reason}})
	}
	if r := pause(CmdResumeJob, ""); !errors.Is(r.Err, ErrConflict) {
		t.Fatalf("resuming a running job: %v", r.Err)
	}
	if r := pause(CmdPauseJob, ""); !errors.Is(r.Err, ErrBadCommand) {
		t.Fatalf("a pause without a reason: %v", r.Err)
	}
	if r := pause(CmdPauseJob, "NATS unreachable"); r.Err != nil {
		t.Fatal(r.Err)
	}
	if st, reason := state(); st != api.JobPaused || reason != "NATS unreachable" {
		t.Fatalf("after a pause: %s %q", st, reason)
	}
	if r := pause(CmdPauseJob, "again"); !errors.Is(r.Err, ErrConflict) {
		t.Fatalf("pausing a paused job: %v", r.Err)
	}
	if r := pause(CmdResumeJob, ""); r.Err != nil {
		t.Fatal(r.Err)
	}
	if st, reason := state(); st != api.JobRunning || reason != "" {
		t.Fatalf("after resuming: %s %q", st, reason)
	}
	if r := pause(CmdPauseJob, "NATS unreachable"); r.Err != nil { // a new epoch resumes it too
		t.Fatal(r.Err)
	}
	if r := start(2); r.Err != nil {
		t.Fatal(r.Err)
	}
	if st, reason := state(); st != api.JobRunning || reason != "" {
		t.Fatalf("after a new epoch of a paused job: %s %q", st, reason)
	}
	if r := apply(t, f, Command{Type: CmdCheckpoint, Checkpoint: &CheckpointRecord{Job: id, Step: 4}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := apply(t, f, Command{Type: CmdCheckpoint, Checkpoint: &CheckpointRecord{Job: id, Step: 3}}); !errors.Is(r.Err, ErrConflict) {
		t.Fatalf("an older checkpoint: %v", r.Err)
	}
	for _, v := range []string{"1", "2"} {
		r := apply(t, f, Command{Type: CmdPublishModel, Model: &ModelRecord{Name: "mnist.cnn", Job: id}})
		if r.Value != v {
			t.Fatalf("model version %q, want %s", r.Value, v)
		}
	}
	if r := apply(t, f, Command{Type: CmdFinishJob, Time: t0, Finish: &FinishJob{Job: id, State: api.JobSucceeded}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := apply(t, f, Command{Type: CmdFinishJob, Finish: &FinishJob{Job: id, State: api.JobFailed}}); !errors.Is(r.Err, ErrConflict) {
		t.Fatalf("finishing twice: %v", r.Err)
	}
	if r := pause(CmdPauseJob, "NATS unreachable"); !errors.Is(r.Err, ErrConflict) {
		t.Fatalf("pausing a finished job: %v", r.Err)
	}
	if r := start(3); !errors.Is(r.Err, ErrConflict) {
		t.Fatalf("starting a finished job: %v", r.Err)
	}
	if r := apply(t, f, Command{Type: "bogus"}); !errors.Is(r.Err, ErrBadCommand) {
		t.Fatalf("unknown command: %v", r.Err)
	}
	if r := f.Apply(&raft.Log{Data: []byte("{")}).(ApplyResult); !errors.Is(r.Err, ErrBadCommand) {
		t.Fatalf("garbage entry: %v", r.Err)
	}
}

type sink struct {
	bytes.Buffer
	cancelled bool
}

func (s *sink) ID() string    { return "test" }
func (s *sink) Cancel() error { s.cancelled = true; return nil }
func (s *sink) Close() error  { return nil }

func TestSnapshotRestore(t *testing.T) {
	f := NewFSM()
	id := submit(t, f, "a")
	apply(t, f, Command{Type: CmdRegisterMember, Member: &MemberInfo{ID: "w1", Kind: "worker", Threads: 2}})
	apply(t, f, Command{Type: CmdStartJob, Start: &StartJob{Job: id, Membership: Membership{Epoch: 1, Members: []string{"w1"}}}})
	apply(t, f, Command{Type: CmdPublishModel, Model: &ModelRecord{Name: "m", Job: id, Files: []string{"a"}}})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var s sink
	if err := snap.Persist(&s); err != nil {
		t.Fatal(err)
	}
	g := NewFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(s.Bytes()))); err != nil {
		t.Fatal(err)
	}
	var a, b []byte
	f.Read(func(st *State) { a, _ = json.Marshal(st) })
	g.Read(func(st *State) { b, _ = json.Marshal(st) })
	if !bytes.Equal(a, b) {
		t.Fatalf("restored state differs:\n%s\n%s", a, b)
	}
	// The restored FSM remembers applied request ids.
	if again := submit(t, g, "a"); again != id {
		t.Fatalf("after restore, a retried submit gave %q", again)
	}
	if err := g.Restore(io.NopCloser(bytes.NewReader([]byte("not json")))); err == nil {
		t.Fatal("restored from garbage")
	}
}
