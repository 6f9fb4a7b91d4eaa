package serve

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/maas-ml/maas/internal/jobspec"
)

// gate is a test hook that holds every forward pass until opened.
type gate struct {
	entered chan struct{} // one send per forward pass that reached the gate
	open    chan struct{}
	once    sync.Once
}

func newGate() *gate { return &gate{entered: make(chan struct{}, 1024), open: make(chan struct{})} }

func (g *gate) hook() {
	g.entered <- struct{}{}
	<-g.open
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

// loadTiny loads the tiny model as version 1 with the serving settings
// changed by edit.
func loadTiny(t *testing.T, ts *testServer, edit func(*jobspec.Serving)) {
	t.Helper()
	a := newArtifact(t, ts.be, 1, func(s *jobspec.Spec) {
		if edit != nil {
			edit(s.Serving)
		}
	})
	if err := ts.Load("tiny", 1, a.specYAML, a.weights); err != nil {
		t.Fatal(err)
	}
}

// TestQueueFull: with the instance stuck on one request and a queue of 2,
// the other requests are refused at once with 429, so the requests held
// in memory stay bounded (the one computing, the one the batcher took to
// run next, and the queue); the held ones complete once the batcher moves.
func TestQueueFull(t *testing.T) {
	g := newGate()
	ts := newTestServer(t, nil, g.hook)
	defer g.release()
	loadTiny(t, ts, func(s *jobspec.Serving) { s.MaxBatchSize, s.MaxQueue = 1, 2 })
	body := inferBody([]int{1, 784}, randomInput(1, 1), nil)

	const requests, held = 20, 4
	codes := make(chan int, requests)
	msgs := make(chan string, requests)
	var wg sync.WaitGroup
	for range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, b := ts.do(t, http.MethodPost, "/v2/models/tiny/infer", body)
			codes <- code
			if code != http.StatusOK {
				msgs <- string(b)
			}
		}()
	}
	<-g.entered // one request is in the forward pass
	depth := ts.met.queueDepth.WithLabelValues("tiny", "1")
	got := map[int]int{}
	for got[http.StatusTooManyRequests] < requests-held {
		code := <-codes
		got[code]++
		if code != http.StatusTooManyRequests {
			t.Fatalf("answer %d before the batcher moved: %s", code, <-msgs)
		}
		if d := testutil.ToFloat64(depth); d > 2 {
			t.Fatalf("queue depth %v > its bound 2", d)
		}
	}
	if m := <-msgs; !strings.Contains(m, "queue full") {
		t.Errorf("429 says %s", m)
	}
	// The last held request may still be on its way to the queue.
	waitFor(t, "the queue to hold 2", func() bool { return testutil.ToFloat64(depth) == 2 })
	g.release()
	wg.Wait()
	close(codes)
	for code := range codes {
		got[code]++
	}
	if got[http.StatusOK] != held || got[http.StatusTooManyRequests] != requests-held {
		t.Errorf("answers %v, want %d × 200 and %d × 429", got, held, requests-held)
	}
}

// TestRequestTimeout: a request that waits past RequestTimeout (here
// behind one stuck in its forward pass) gets 503 with the reason.
func TestRequestTimeout(t *testing.T) {
	g := newGate()
	ts := newTestServer(t, func(c *Config) { c.RequestTimeout = 50 * time.Millisecond }, g.hook)
	defer g.release()
	loadTiny(t, ts, func(s *jobspec.Serving) { s.MaxBatchSize = 1 })
	body := inferBody([]int{1, 784}, randomInput(1, 1), nil)
	first := make(chan int, 1)
	go func() {
		code, _ := ts.do(t, http.MethodPost, "/v2/models/tiny/infer", body)
		first <- code
	}()
	<-g.entered
	code, b := ts.do(t, http.MethodPost, "/v2/models/tiny/infer", body)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), "request timed out after 50ms waiting for tiny version 1") {
		t.Errorf("%d %s, want 503 naming the timeout", code, b)
	}
	// A request whose forward pass has begun finishes, even past the timeout.
	g.release()
	if code := <-first; code != http.StatusOK {
		t.Errorf("the request in its forward pass got %d, want 200", code)
	}
}

// TestBatching: requests queued while the batcher is busy run together in
// one forward pass; with batching off each runs alone.
func TestBatching(t *testing.T) {
	for _, disable := range []bool{false, true} {
		g := newGate()
		ts := newTestServer(t, func(c *Config) { c.DisableBatching = disable }, g.hook)
		loadTiny(t, ts, nil)
		body := inferBody([]int{1, 784}, randomInput(1, 1), nil)
		var wg sync.WaitGroup
		send := func(k int) {
			for range k {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if code, b := ts.do(t, http.MethodPost, "/v2/models/tiny/infer", body); code != http.StatusOK {
						t.Errorf("%d %s", code, b)
					}
				}()
			}
		}
		send(1)
		<-g.entered
		send(5)
		// The batcher takes one of them to wait for the instance; 4 queue.
		depth := ts.met.queueDepth.WithLabelValues("tiny", "1")
		waitFor(t, "4 queued requests", func() bool { return testutil.ToFloat64(depth) == 4 })
		g.release()
		wg.Wait()
		sizes := ts.met.batchSize.WithLabelValues("tiny", "1")
		count, sum := histogram(t, sizes)
		want := uint64(2)
		if disable {
			want = 6
		}
		if count != want || sum != 6 {
			t.Errorf("batching disabled %v: %d forward passes for %v samples, want %d for 6", disable, count, sum, want)
		}
	}
}
