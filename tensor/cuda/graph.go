package cuda

import (
	"fmt"
	"unsafe"
)

// Graph is work captured from the Backend's stream once and replayed as
// one launch: a device-resident training step (kernels and GEMMs on
// device memory) pays the launch cost of its dozens of kernels once per
// step instead of once per kernel. Capture or Queue.Capture makes one;
// Launch and Close use it outside Do, Queue.LaunchGraph and
// Queue.FreeGraph inside.
type Graph struct {
	b           *Backend
	graph, exec uintptr
}

// Capture records the work record queues on the Backend's stream into a
// Graph, instead of running it. record must only queue device work
// (launches, GEMMs, copies between Buffers and pinned memory): anything
// that waits for the stream, such as a Backend method on host slices or
// a Download, fails during a capture. An Upload during a capture records
// the copy from the Buffer's pinned mirror, so each replay copies what the
// mirror holds then.
func (b *Backend) Capture(record func() error) (*Graph, error) {
	if err := b.call(b.eng.beginCapture); err != nil {
		return nil, fmt.Errorf("cuda: begin capture: %w", err)
	}
	recErr := record()
	var graph uintptr
	err := b.call(func() (err error) {
		graph, err = b.eng.endCapture()
		return err
	})
	if recErr != nil || err != nil {
		if graph != 0 {
			_ = b.call(func() error { return b.eng.destroyGraph(graph, 0) })
		}
		if recErr != nil {
			return nil, recErr
		}
		return nil, fmt.Errorf("cuda: end capture: %w", err)
	}
	g := &Graph{b: b, graph: graph}
	if err := b.call(func() (err error) {
		g.exec, err = b.eng.instantiate(graph)
		return err
	}); err != nil {
		_ = b.call(func() error { return b.eng.destroyGraph(graph, 0) })
		return nil, err
	}
	return g, nil
}

// Launch queues one replay of g; Sync waits for it.
func (g *Graph) Launch() error {
	if g.exec == 0 {
		return ErrClosed
	}
	return g.b.call(func() error { return g.b.eng.launchGraph(g.exec) })
}

// Close frees g.
func (g *Graph) Close() error {
	if g.exec == 0 && g.graph == 0 {
		return nil
	}
	err := g.b.call(func() error { return g.b.eng.destroyGraph(g.graph, g.exec) })
	g.graph, g.exec = 0, 0
	return err
}

// call runs f under the Backend's mutex with the engine bound, returning
// its error instead of panicking (the device-resident API returns errors).
func (b *Backend) call(f func() error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if err := b.eng.enter(); err != nil {
		b.eng.leave()
		return err
	}
	defer b.eng.leave()
	return f()
}

// Sync waits for the work queued on the stream.
func (b *Backend) Sync() error { return b.call(b.eng.sync) }

// NewBuffer returns a device buffer of n float32s for device-resident
// work; Free releases it.
func (b *Backend) NewBuffer(n int) (*Buffer, error) {
	buf := new(Buffer)
	return buf, b.call(func() error { return buf.grow(b.eng, 4*max(n, 1)) })
}

// Free releases buf's memory.
func (b *Backend) Free(buf *Buffer) error {
	return b.call(func() error {
		if err := b.eng.sync(); err != nil {
			return err
		}
		return buf.release(b.eng)
	})
}

// Upload copies src into buf (which must be large enough) in stream order.
func (b *Backend) Upload(buf *Buffer, src []float32) error {
	if 4*len(src) > buf.bytes {
		return fmt.Errorf("cuda: upload of %d floats into a buffer of %d", len(src), buf.bytes/4)
	}
	if len(src) == 0 {
		return nil
	}
	return b.call(func() error { return buf.upload(b.eng, unsafe.Pointer(&src[0]), 4*len(src)) })
}

// Download waits for the queued work and copies the start of buf into dst.
func (b *Backend) Download(dst []float32, buf *Buffer) error {
	if 4*len(dst) > buf.bytes {
		return fmt.Errorf("cuda: download of %d floats from a buffer of %d", len(dst), buf.bytes/4)
	}
	if len(dst) == 0 {
		return nil
	}
	return b.call(func() error { return buf.download(b.eng, unsafe.Pointer(&dst[0]), 4*len(dst)) })
}
