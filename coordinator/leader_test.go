package coordinator

import (
	"testing"
	"time"

	"github.com/maas-ml/maas/internal/wire"
)

// TestLossBackoff: a worker lost from a job may rejoin only after a
// backoff that doubles with each loss, once it has heartbeated since the
// loss, and never after maxLosses.
func TestLossBackoff(t *testing.T) {
	ls := &leaderState{losses: map[string]map[string]*workerLosses{}, lastSeen: map[string]time.Time{}}
	t0 := time.Unix(1000, 0)
	if !ls.joinable("j", "w", t0) {
		t.Fatal("a worker never lost is not joinable")
	}
	ls.lastSeen["w"] = t0.Add(-time.Second) // its last heartbeat before it died
	ls.noteLoss("j", "w", t0)
	if ls.joinable("j", "w", t0.Add(time.Hour)) {
		t.Fatal("a lost worker not heard from since may join again")
	}
	ls.lastSeen["w"] = t0.Add(time.Millisecond)
	if ls.joinable("j", "w", t0.Add(rejoinBackoff-time.Millisecond)) || !ls.joinable("j", "w", t0.Add(rejoinBackoff+time.Millisecond)) {
		t.Fatalf("after one loss the backoff is not %v", rejoinBackoff)
	}
	if !ls.joinable("other", "w", t0) {
		t.Fatal("a loss from one job holds the worker off another")
	}
	ls.noteLoss("j", "w", t0)
	if ls.joinable("j", "w", t0.Add(2*rejoinBackoff-time.Millisecond)) || !ls.joinable("j", "w", t0.Add(2*rejoinBackoff+time.Millisecond)) {
		t.Fatalf("after two losses the backoff is not %v", 2*rejoinBackoff)
	}
	for range maxLosses - 2 {
		ls.noteLoss("j", "w", t0)
	}
	if ls.joinable("j", "w", t0.Add(time.Hour)) {
		t.Fatalf("after %d losses the worker may still join", maxLosses)
	}
}

// TestLateHeartbeatOfAReplacedProcess: a parameter server restarts; the
// old process's last heartbeat (naming the job it served) arrives after
// the new one's registration, on another path. The leader still holds
// that the server serves nothing (so no assignment goes on from where
// the others are, see assign) and that it restarted.
func TestLateHeartbeatOfAReplacedProcess(t *testing.T) {
	ls := &leaderState{lastSeen: map[string]time.Time{}, serving: map[string]serving{}, boots: map[string]string{},
		reborn: map[string]bool{}, registered: map[string]string{}}
	t0 := time.Unix(1000, 0)
	old := wire.Heartbeat{V: wire.Version, ID: "ps", Kind: wire.KindParamServer, Job: "j", Boot: "a"}
	if ls.noteHeartbeat(&old, t0) || ls.serving["ps"].job != "j" {
		t.Fatalf("the first heartbeat: serving %+v", ls.serving["ps"])
	}
	if !ls.noteRegistration(&wire.Register{V: wire.Version, ID: "ps", Kind: wire.KindParamServer, Boot: "b"}, t0.Add(time.Second)) {
		t.Error("a registration of a new incarnation is not a restart")
	}
	if ls.noteHeartbeat(&old, t0.Add(2*time.Second)); ls.serving["ps"].job != "" || ls.boots["ps"] != "b" || !ls.lastSeen["ps"].Equal(t0.Add(time.Second)) {
		t.Errorf("after the old process's late heartbeat: serving %+v, boot %q, last seen %v", ls.serving["ps"], ls.boots["ps"], ls.lastSeen["ps"])
	}
	if !ls.reborn["ps"] {
		t.Error("the restart is not marked")
	}
	fresh := wire.Heartbeat{V: wire.Version, ID: "ps", Kind: wire.KindParamServer, Boot: "b"}
	if ls.noteHeartbeat(&fresh, t0.Add(3*time.Second)) || !ls.lastSeen["ps"].Equal(t0.Add(3*time.Second)) {
		t.Error("the new process's heartbeat is not taken as it is")
	}
	// A member that registered with an older leader (no registration
	// here) is judged by its heartbeats alone.
	other := wire.Heartbeat{V: wire.Version, ID: "w", Kind: wire.KindWorker, Boot: "x"}
	ls.noteHeartbeat(&other, t0)
	other.Boot = "y"
	if !ls.noteHeartbeat(&other, t0.Add(time.Second)) {
		t.Error("a new incarnation seen in heartbeats alone is not a restart")
	}
}
