package cuda

import (
	"fmt"
	"unsafe"
)

// Queue is the Backend's one stream, held by Do for a sequence of
// device-resident work: device and pinned memory, copies, kernels on
// device addresses (queue_kernels.go), GEMMs and CUDA graphs. It is what
// a caller that keeps its data on the device builds on (the training step
// of internal/train/gputrain); the Backend's tensor.Backend methods copy
// host slices in and out instead.
//
// Addresses are device addresses (uintptr) from Alloc, at offsets the
// caller computes; sizes are in elements unless named bytes. Work is
// queued in order on the stream and runs asynchronously: only Sync waits.
//
// A queued operation (a copy, a kernel, a GEMM, a graph launch) returns no
// error: its failure is recorded, the Queue's later operations do nothing
// until Err takes it, and Sync and Do return it. A Queue is valid only
// inside the function given to Do.
type Queue struct {
	b *Backend
}

// Do runs f with the Backend's stream held: it takes the Backend's mutex
// and binds the device to the calling thread until f returns, so no other
// call queues work in between. It returns the first failure: one a queued
// operation recorded and Err did not take, else f's error.
func (b *Backend) Do(f func(q *Queue) error) error {
	return b.call(func() error {
		err := f(&b.queue)
		if failed := b.takeErr(); failed != nil {
			return failed
		}
		return err
	})
}

// Err returns the first failure of the operations queued since Do began
// or since the last Err, and clears it, so that later operations run again.
func (q *Queue) Err() error { return q.b.takeErr() }

// Sync waits for the queued work. It returns the first failure: one a
// queued operation recorded (taken, as by Err, without waiting) or the
// wait's own.
func (q *Queue) Sync() error {
	if err := q.Err(); err != nil {
		return err
	}
	return q.b.eng.sync()
}

// Alloc returns bytes of device memory, contents undefined.
func (q *Queue) Alloc(bytes int) (uintptr, error) { return q.b.eng.alloc(bytes) }

// Free releases device memory from Alloc. Work still queued must not use
// it: Sync first.
func (q *Queue) Free(p uintptr) error { return q.b.eng.free(p) }

// AllocHost returns bytes of pinned (page-locked) host memory, the memory
// Upload and Download copy from and to.
func (q *Queue) AllocHost(bytes int) (unsafe.Pointer, error) { return q.b.eng.allocHost(bytes) }

// FreeHost releases pinned memory from AllocHost.
func (q *Queue) FreeHost(p unsafe.Pointer) error { return q.b.eng.freeHost(p) }

// Upload queues a copy of bytes from pinned memory src (AllocHost) to the
// device address dst. The copy reads src when it runs, not when queued:
// src must hold its values until then (Sync), and in a captured Graph
// each replay copies what src holds at that replay.
func (q *Queue) Upload(dst uintptr, src unsafe.Pointer, bytes int) {
	if q.b.err == nil {
		q.b.fail(q.b.eng.upload(dst, src, bytes))
	}
}

// Download queues a copy of bytes from the device address src to pinned
// memory dst (AllocHost); dst holds them after Sync.
func (q *Queue) Download(dst unsafe.Pointer, src uintptr, bytes int) {
	if q.b.err == nil {
		q.b.fail(q.b.eng.download(dst, src, bytes))
	}
}

// Capture records the work record queues into a Graph instead of running
// it. record must only queue work (copies, kernels, GEMMs); a Sync inside
// it fails. A failure recorded during record is Capture's error, and is
// taken: the Queue runs again after. The Graph is freed by FreeGraph
// inside Do, or by its Close outside.
func (q *Queue) Capture(record func()) (*Graph, error) {
	b := q.b
	if err := b.eng.beginCapture(); err != nil {
		return nil, fmt.Errorf("cuda: begin capture: %w", err)
	}
	record()
	recErr := b.takeErr()
	graph, err := b.eng.endCapture()
	if recErr == nil && err == nil {
		var exec uintptr
		if exec, err = b.eng.instantiate(graph); err == nil {
			return &Graph{b: b, graph: graph, exec: exec}, nil
		}
	}
	if graph != 0 {
		_ = b.eng.destroyGraph(graph, 0)
	}
	if recErr != nil {
		return nil, recErr
	}
	return nil, fmt.Errorf("cuda: capture: %w", err)
}

// LaunchGraph queues one replay of g.
func (q *Queue) LaunchGraph(g *Graph) {
	switch {
	case q.b.err != nil:
	case g.exec == 0:
		q.b.fail(ErrClosed)
	default:
		q.b.fail(q.b.eng.launchGraph(g.exec))
	}
}

// FreeGraph frees g, as g.Close does outside Do.
func (q *Queue) FreeGraph(g *Graph) error {
	if g.exec == 0 && g.graph == 0 {
		return nil
	}
	err := q.b.eng.destroyGraph(g.graph, g.exec)
	g.graph, g.exec = 0, 0
	return err
}

// takeErr returns the first failure of the work queued since the last
// takeErr and clears it.
func (b *Backend) takeErr() error {
	err := b.err
	b.err = nil
	return err
}
