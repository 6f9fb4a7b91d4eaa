package serve

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/tensor"
)

// job is one inference request in a batcher's queue: n samples x (n, C, H,
// W). The batcher fills the results and closes done; the requester reads
// them only after done is closed.
type job struct {
	ctx context.Context
	x   []float32
	n   int

	logits, probs []float32 // (n, classes)
	class         []int64   // (n)
	// A text model's request: the prompts to extend, and the results.
	gen   *genRequest
	texts []string
	// An explanation request: its options and results. It runs alone.
	explain *explainRequest
	err     error
	done    chan struct{}
}

// batcher owns one model version's nn.Model (which is not safe for
// concurrent use) and runs the forward passes of its queued requests,
// several at once when they come together.
//
// A request that finds nothing queued and an instance idle computes at
// once in its own goroutine (runInline); the others queue.
//
// Batching policy: the batcher takes the first queued request and whatever
// else is queued, up to maxBatch samples. While other requests for the
// version are still on their way (read and checked by their handlers:
// incoming > 0) it waits for them, but never past delay after the first;
// then it runs one forward pass for the whole batch. A lone request thus
// never waits for company that is not coming.
type batcher struct {
	model      *nn.Model
	be         tensor.Backend
	sampleSize int
	classes    int
	maxBatch   int
	delay      time.Duration
	single     bool // each request alone (Config.DisableBatching)
	queue      chan *job
	incoming   *atomic.Int32
	depth      prometheus.Gauge
	sizes      prometheus.Observer
	// beforeForward, if set, is called before each forward pass (tests).
	beforeForward func()
	// explainer computes explanations, with a copy of model's weights;
	// built on the first one.
	explainer *nn.Explainer

	stop     chan struct{}
	stopOnce *sync.Once

	// mu is held while a batch computes: by the run goroutine, or by a
	// request handler that found the instance idle (see runInline).
	mu     sync.Mutex
	inline []*job // the batch of a runInline, under mu

	// Owned by the run goroutine (and warm, before it starts).
	x      []float32 // (maxBatch, C, H, W)
	probs  []float32 // (maxBatch, classes)
	class  []int32   // (maxBatch)
	batch  []*job
	live   []*job
	carry  *job // taken from the queue but did not fit the last batch
	timer  *time.Timer
	queued int // samples in batch

	// A text model's generation state (see generate).
	text    *textModel
	seqs    []sequence
	active  []int
	at      []int     // (maxBatch) the position read in each window
	scratch []float64 // (classes) for sampling
}

func newBatcher(m *nn.Model, sampleSize, classes, maxBatch int, delay time.Duration, maxQueue int) *batcher {
	return &batcher{
		model: m, be: m.Backend(), sampleSize: sampleSize, classes: classes, maxBatch: maxBatch, delay: delay,
		queue: make(chan *job, maxQueue), stop: make(chan struct{}), stopOnce: new(sync.Once),
		x: make([]float32, maxBatch*sampleSize), probs: make([]float32, maxBatch*classes), class: make([]int32, maxBatch),
		batch: make([]*job, 0, maxBatch), live: make([]*job, 0, maxBatch),
	}
}

// another returns a batcher for a second instance of the model, m, which
// takes its batches from b's queue and stops with b.
func (b *batcher) another(m *nn.Model) *batcher {
	c := newBatcher(m, b.sampleSize, b.classes, b.maxBatch, b.delay, 0)
	c.queue, c.stop, c.stopOnce = b.queue, b.stop, b.stopOnce
	c.single, c.incoming, c.depth, c.sizes, c.beforeForward = b.single, b.incoming, b.depth, b.sizes, b.beforeForward
	c.setText(b.text)
	return c
}

// setText makes b a text model's batcher: it generates instead of
// classifying.
func (b *batcher) setText(t *textModel) {
	if t == nil {
		return
	}
	b.text, b.at, b.scratch = t, make([]int, b.maxBatch), make([]float64, b.classes)
}

// submit queues j, or fails at once with ErrQueueFull.
func (b *batcher) submit(j *job) error {
	select {
	case b.queue <- j:
		b.setDepth()
		return nil
	default:
		return ErrQueueFull
	}
}

// setDepth sets the queue-depth gauge from the queue itself: it never shows
// more than the queue holds, whatever the order of concurrent updates.
func (b *batcher) setDepth() { b.depth.Set(float64(len(b.queue))) }

// close makes run return after its current batch (every instance's run).
func (b *batcher) close() { b.stopOnce.Do(func() { close(b.stop) }) }

// warm runs one full batch of zeros, so every layer's buffers reach their
// final size before the first request, and checks that the outputs are
// finite.
func (b *batcher) warm() error {
	clear(b.x)
	logits, err := b.forward(b.maxBatch)
	if err != nil {
		return err
	}
	for _, v := range logits {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("the weights give non-finite outputs (%v) on a zero input", v)
		}
	}
	return nil
}

// run batches and computes until close.
func (b *batcher) run() {
	b.timer = time.NewTimer(time.Hour)
	b.timer.Stop()
	for {
		first := b.carry
		b.carry = nil
		if first == nil {
			select {
			case <-b.stop:
				return
			case first = <-b.queue:
				b.setDepth()
			}
		}
		// Waiting for the instance (busy with an inline request) lets more
		// requests queue up for this batch.
		b.mu.Lock()
		b.collect(first)
		b.runBatch(b.batch)
		b.mu.Unlock()
	}
}

// runInline computes j at once in the caller's goroutine if this instance
// is idle, and reports whether it did. A lone request then skips the two
// goroutine hand-offs (to the batcher and back), which matter at low load.
func (b *batcher) runInline(j *job) bool {
	if !b.mu.TryLock() {
		return false
	}
	defer b.mu.Unlock()
	b.inline = append(b.inline[:0], j)
	b.runBatch(b.inline)
	return true
}

// collect gathers the batch that starts with first.
func (b *batcher) collect(first *job) {
	b.batch = append(b.batch[:0], first)
	b.queued = first.n
	if b.single || first.explain != nil {
		return
	}
	waiting := false
	defer func() {
		if waiting {
			b.timer.Stop()
		}
	}()
	for b.queued < b.maxBatch {
		select {
		case j := <-b.queue:
			b.setDepth()
			if !b.add(j) {
				return
			}
			continue
		default:
		}
		// The queue is empty: wait only for requests on their way.
		if b.delay <= 0 || b.incoming.Load() == 0 {
			return
		}
		if !waiting {
			b.timer.Reset(b.delay)
			waiting = true
		}
		select {
		case j := <-b.queue:
			b.setDepth()
			if !b.add(j) {
				return
			}
		case <-b.timer.C:
			waiting = false
			return
		case <-b.stop:
			return
		}
	}
}

// add appends j to the batch if it fits; otherwise it keeps j for the next
// batch and returns false.
func (b *batcher) add(j *job) bool {
	if b.queued+j.n > b.maxBatch || j.explain != nil {
		b.carry = j
		return false
	}
	b.batch = append(b.batch, j)
	b.queued += j.n
	return true
}

// runBatch computes batch and hands out the results. Requests whose
// caller has gone (timed out, disconnected) are skipped. b.mu is held.
func (b *batcher) runBatch(batch []*job) {
	ss, k := b.sampleSize, b.classes
	n := 0
	b.live = b.live[:0]
	for _, j := range batch {
		if j.ctx.Err() != nil {
			continue
		}
		copy(b.x[n*ss:(n+j.n)*ss], j.x)
		n += j.n
		b.live = append(b.live, j)
	}
	clear(batch)
	if n == 0 {
		return
	}
	if b.beforeForward != nil {
		b.beforeForward()
	}
	if j := b.live[0]; j.explain != nil { // alone in its batch
		j.err = b.explainJob(j)
		close(j.done)
		clear(b.live)
		return
	}
	if b.text != nil {
		err := b.generate(b.live)
		for _, j := range b.live {
			j.err = err
			close(j.done)
		}
		clear(b.live)
		return
	}
	logits, err := b.forward(n)
	b.sizes.Observe(float64(n))
	off := 0
	for _, j := range b.live {
		if err != nil {
			j.err = err
		} else {
			copy(j.logits, logits[off*k:(off+j.n)*k])
			copy(j.probs, b.probs[off*k:(off+j.n)*k])
			for i := range j.n {
				j.class[i] = int64(b.class[off+i])
			}
		}
		off += j.n
		close(j.done)
	}
	clear(b.live)
}

// forward runs the first n samples of b.x through the model and fills
// b.probs and b.class; a panic in the model becomes an error.
func (b *batcher) forward(n int) (logits []float32, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("serve: forward pass failed: %v", r)
		}
	}()
	k := b.classes
	logits = b.model.Forward(b.x[:n*b.sampleSize], n, false)
	b.be.Softmax(logits[:n*k], b.probs[:n*k], n, k)
	b.be.Argmax(logits[:n*k], n, k, b.class[:n])
	return logits, nil
}
