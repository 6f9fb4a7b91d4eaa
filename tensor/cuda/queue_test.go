package cuda

import (
	"errors"
	"math"
	"testing"
	"unsafe"
)

// TestQueue captures a scale and an axpy on device memory and replays
// them on the host emulation (x ← 2x, then y += x, three times), then
// checks how failures travel: recorded, later work skipped until Err
// takes it, returned by Sync, Capture and Do.
func TestQueue(t *testing.T) {
	b := newHostBackend(t)
	const n = 300
	before, _ := b.HostCounts()
	err := b.Do(func(q *Queue) error {
		x, err := q.Alloc(4 * n)
		if err != nil {
			return err
		}
		defer q.Free(x)
		y, err := q.Alloc(4 * n)
		if err != nil {
			return err
		}
		defer q.Free(y)
		pin, err := q.AllocHost(8 * n)
		if err != nil {
			return err
		}
		defer q.FreeHost(pin)
		hx, hy := unsafe.Slice((*float32)(pin), 2*n)[:n], unsafe.Slice((*float32)(pin), 2*n)[n:]
		for i := range hx {
			hx[i], hy[i] = float32(i), 1
		}
		q.Upload(x, unsafe.Pointer(&hx[0]), 4*n)
		q.Upload(y, unsafe.Pointer(&hy[0]), 4*n)
		g, err := q.Capture(func() {
			q.Scale(2, x, n)
			q.Axpy(1, x, y, n)
		})
		if err != nil {
			return err
		}
		defer q.FreeGraph(g)
		for range 3 {
			q.LaunchGraph(g)
		}
		q.Download(unsafe.Pointer(&hy[0]), y, 4*n)
		if err := q.Sync(); err != nil {
			return err
		}
		for i, v := range hy {
			if want := 1 + 14*float32(i); v != want { // 2i + 4i + 8i
				t.Fatalf("y[%d] = %g after 3 replays, want %g", i, v, want)
			}
		}

		// A launch over 2^31 threads fails; the fill after it is skipped
		// until Err takes the failure.
		q.Fill(x, math.MaxInt32+1, 0)
		q.Fill(y, n, 5)
		if err := q.Err(); !errors.Is(err, errTooLarge) {
			t.Errorf("Err after a launch too large = %v, want errTooLarge", err)
		}
		q.Download(unsafe.Pointer(&hy[0]), y, 4)
		if err := q.Sync(); err != nil || hy[0] != 1 {
			t.Errorf("after the failure: y[0] = %g, %v; want 1 (the fill skipped) and no error", hy[0], err)
		}
		if _, err := q.Capture(func() { q.Fill(x, math.MaxInt32+1, 0) }); !errors.Is(err, errTooLarge) {
			t.Errorf("Capture of a failing launch = %v, want errTooLarge", err)
		}
		q.Fill(x, math.MaxInt32+1, 0)
		return nil
	})
	if !errors.Is(err, errTooLarge) {
		t.Errorf("Do = %v, want the failure f left pending", err)
	}
	after, ok := b.HostCounts()
	if !ok || after.Captures-before.Captures != 2 || after.Replays-before.Replays != 3 {
		t.Errorf("counters %+v, then %+v (ok %v): want 2 captures and 3 replays", before, after, ok)
	}
}
