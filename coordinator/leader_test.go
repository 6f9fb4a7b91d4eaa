package coordinator

import (
	"testing"
	"time"
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
