package cuda

import (
	"unsafe"
)

// Buffer is device memory that grows and is never shrunk: a training step
// asks for the same sizes every time, so after the first step no call
// allocates. It has a pinned host mirror of the same size, allocated on
// the first transfer, through which copies to and from Go memory go.
//
// A Buffer belongs to one Backend and is used under its mutex.
type Buffer struct {
	ptr   uintptr        // device address, 0 until the first grow
	bytes int            // capacity of ptr and of stage
	stage unsafe.Pointer // pinned host memory, or nil
}

// Ptr returns the device address (0 for a buffer never grown).
func (b *Buffer) Ptr() uintptr { return b.ptr }

// Bytes returns the capacity.
func (b *Buffer) Bytes() int { return b.bytes }

// grow makes b hold at least bytes. Growing waits for queued work (which
// may still read the old memory), frees the old memory and allocates the
// new size rounded up to 256 bytes; the contents are not kept.
func (b *Buffer) grow(e engine, bytes int) error {
	if bytes <= b.bytes {
		return nil
	}
	if err := e.sync(); err != nil {
		return err
	}
	hadStage := b.stage != nil
	if err := b.release(e); err != nil {
		return err
	}
	bytes = (bytes + 255) &^ 255
	p, err := e.alloc(bytes)
	if err != nil {
		return err
	}
	b.ptr, b.bytes = p, bytes
	if hadStage {
		return b.ensureStage(e)
	}
	return nil
}

func (b *Buffer) ensureStage(e engine) error {
	if b.stage != nil {
		return nil
	}
	s, err := e.allocHost(b.bytes)
	if err != nil {
		return err
	}
	b.stage = s
	return nil
}

// release frees b's memory; b can grow again.
func (b *Buffer) release(e engine) error {
	var err error
	if b.ptr != 0 {
		err = e.free(b.ptr)
	}
	if b.stage != nil {
		if e2 := e.freeHost(b.stage); err == nil {
			err = e2
		}
	}
	*b = Buffer{}
	return err
}

// upload queues a copy of src (bytes long, Go memory) into b, growing b:
// src is copied into the pinned mirror now, and from there to the device
// in stream order.
func (b *Buffer) upload(e engine, src unsafe.Pointer, bytes int) error {
	if err := b.grow(e, bytes); err != nil {
		return err
	}
	if err := b.ensureStage(e); err != nil {
		return err
	}
	copy(unsafe.Slice((*byte)(b.stage), bytes), unsafe.Slice((*byte)(src), bytes))
	return e.upload(b.ptr, b.stage, bytes)
}

// download copies the first bytes of b into dst (Go memory): it waits for
// the queued work, then copies through the pinned mirror.
func (b *Buffer) download(e engine, dst unsafe.Pointer, bytes int) error {
	if err := b.ensureStage(e); err != nil {
		return err
	}
	if err := e.download(b.stage, b.ptr, bytes); err != nil {
		return err
	}
	if err := e.sync(); err != nil {
		return err
	}
	copy(unsafe.Slice((*byte)(dst), bytes), unsafe.Slice((*byte)(b.stage), bytes))
	return nil
}
