package tensor

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// runner is a parallel kernel: run computes part `part` of its parts.
// Kernels keep their arguments in a struct taken from a free list, so a
// parallel call allocates nothing.
type runner interface {
	run(part int)
}

type poolJob struct {
	r    runner
	part int
	wg   *partsLeft
}

// partsLeft counts the parts of a call still running on other cores. The
// caller, done with its own part, polls left for a while before it parks
// on wg: a parked goroutine takes tens of microseconds to wake, and the
// parts of a call usually end within microseconds of each other.
type partsLeft struct {
	left atomic.Int32
	wg   sync.WaitGroup
}

func (p *partsLeft) add(n int) {
	p.left.Add(int32(n))
	p.wg.Add(n)
}

func (p *partsLeft) done() {
	p.left.Add(-1)
	p.wg.Done()
}

// wait returns when every part is done.
func (p *partsLeft) wait() {
	for start := time.Now(); p.left.Load() > 0 && time.Since(start) < spinFor; {
		runtime.Gosched()
	}
	p.wg.Wait()
}

// workerPool runs the parts of a kernel on a fixed set of goroutines: the
// caller plus threads−1 workers started once. A caller waiting for its parts
// runs queued parts itself, so nested parallel calls cannot deadlock.
type workerPool struct {
	threads int
	jobs    chan poolJob
	done    chan struct{}
	wg      sync.WaitGroup // counts the worker goroutines

	// Free lists of kernel arguments and GEMM packing buffers. Unlike a
	// sync.Pool they survive garbage collections, so a steady training
	// step never allocates.
	gemmArgs freeList[gemmArgs]
	convArgs freeList[convArgs]
	elemArgs freeList[elemArgs]
	convFwd  freeList[convFwdArgs]
	convBwd  freeList[convBwdArgs]
	gemmBufs freeList[gemmBuffers]
	scratch  freeList[convScratch]
}

// freeList is a bounded list of reusable values, last in first out: a
// value goes back to the next caller, so that a steady sequence of calls
// (a training step) meets the same values in the same roles every time,
// and buffers that grew once for their role do not grow again.
type freeList[T any] struct{ s *freeStack[T] }

type freeStack[T any] struct {
	mu    sync.Mutex // guards items
	items []*T
}

func newFreeList[T any](n int) freeList[T] {
	return freeList[T]{s: &freeStack[T]{items: make([]*T, 0, n)}}
}

// get returns a free value, or a new one.
func (f freeList[T]) get() *T {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	if n := len(f.s.items); n > 0 {
		x := f.s.items[n-1]
		f.s.items = f.s.items[:n-1]
		return x
	}
	return new(T)
}

// put returns x to the list (dropping it when the list is full).
func (f freeList[T]) put(x *T) {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	if len(f.s.items) < cap(f.s.items) {
		f.s.items = append(f.s.items, x)
	}
}

func newWorkerPool(threads int) *workerPool {
	p := &workerPool{threads: threads, jobs: make(chan poolJob, 4*threads), done: make(chan struct{}),
		gemmArgs: newFreeList[gemmArgs](4 * threads), convArgs: newFreeList[convArgs](4 * threads),
		elemArgs: newFreeList[elemArgs](4 * threads), convFwd: newFreeList[convFwdArgs](4 * threads),
		convBwd:  newFreeList[convBwdArgs](4 * threads),
		gemmBufs: newFreeList[gemmBuffers](4 * threads), scratch: newFreeList[convScratch](8 * threads)}
	for i := 1; i < threads; i++ {
		p.wg.Add(1)
		go p.work()
	}
	return p
}

// spinFor is how long a worker keeps polling for the next part after
// finishing one before it parks: the kernels of one forward pass follow
// each other within microseconds, and waking a parked goroutine (and the
// core under it) costs tens of them.
const spinFor = 50 * time.Microsecond

func (p *workerPool) work() {
	defer p.wg.Done()
	for {
		select {
		case j := <-p.jobs:
			j.r.run(j.part)
			j.wg.done()
			p.spin()
		case <-p.done:
			return
		}
	}
}

// spin runs parts that arrive within spinFor of each other.
func (p *workerPool) spin() {
	start := time.Now()
	for time.Since(start) < spinFor {
		select {
		case j := <-p.jobs:
			j.r.run(j.part)
			j.wg.done()
			start = time.Now()
		default:
			runtime.Gosched()
		}
	}
}

// run computes parts 0..parts−1 of r and returns when all are done. wg must
// be owned by the caller (it lives in r's struct so nothing escapes per call).
func (p *workerPool) run(r runner, parts int, wg *partsLeft) {
	if parts <= 1 || p.threads <= 1 {
		for i := 0; i < parts; i++ {
			r.run(i)
		}
		return
	}
	wg.add(parts - 1)
	for i := 1; i < parts; i++ {
		select {
		case p.jobs <- poolJob{r: r, part: i, wg: wg}:
		default: // queue full: do it here rather than block
			r.run(i)
			wg.done()
		}
	}
	r.run(0)
	for {
		select {
		case j := <-p.jobs:
			j.r.run(j.part)
			j.wg.done()
			continue
		default:
		}
		break
	}
	wg.wait()
}

func (p *workerPool) close() {
	close(p.done)
	p.wg.Wait()
}

// split returns the bounds of part i of n items cut into parts pieces whose
// sizes are multiples of align (but the last).
func split(n, parts, align, i int) (lo, hi int) {
	blocks := (n + align - 1) / align
	lo = blocks * i / parts * align
	hi = blocks * (i + 1) / parts * align
	return min(lo, n), min(hi, n)
}
