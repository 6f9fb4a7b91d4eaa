package netemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// inNS runs f on an OS thread moved into namespace ns. Sockets f makes
// belong to ns for their whole life; the thread is discarded afterwards
// (its goroutine exits still locked), so no other goroutine runs there.
func inNS(ns string, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		fd, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			done <- fmt.Errorf("netemu: %w", err)
			return
		}
		err = unix.Setns(int(fd.Fd()), unix.CLONE_NEWNET)
		fd.Close()
		if err != nil {
			done <- fmt.Errorf("netemu: setns %s: %w", ns, err)
			return
		}
		done <- f()
	}()
	return <-done
}

// Measure sends TCP traffic from host from to host to for about d and
// returns the rate the receiver saw, in bits/s: what one flow gets over
// the two links between them (from's way out, to's way in).
func (nt *Net) Measure(ctx context.Context, from, to int, d time.Duration) (float64, error) {
	if from == to || from < 0 || to < 0 || from >= len(nt.Hosts) || to >= len(nt.Hosts) {
		return 0, fmt.Errorf("netemu: measure from host %d to host %d of %d", from, to, len(nt.Hosts))
	}
	var ln net.Listener
	if err := inNS(nt.Hosts[to].NS, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(nt.Hosts[to].Addr, "0"))
		return err
	}); err != nil {
		return 0, err
	}
	defer ln.Close()
	type result struct {
		bits float64
		err  error
	}
	got := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		// Count from the first byte, so that the connection's setup is
		// not in the figure.
		buf := make([]byte, 256<<10)
		if _, err := c.Read(buf); err != nil {
			got <- result{err: err}
			return
		}
		start := time.Now()
		rest, err := io.CopyBuffer(io.Discard, c, buf)
		if err != nil {
			got <- result{err: err}
			return
		}
		got <- result{bits: float64(rest) * 8 / time.Since(start).Seconds()}
	}()
	var c net.Conn
	if err := inNS(nt.Hosts[from].NS, func() (err error) {
		var dl net.Dialer
		c, err = dl.DialContext(ctx, "tcp", ln.Addr().String())
		return err
	}); err != nil {
		return 0, err
	}
	buf := make([]byte, 256<<10)
	deadline := time.Now().Add(d)
	var werr error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, werr = c.Write(buf); werr != nil {
			break
		}
	}
	c.Close()
	r := <-got
	if err := errors.Join(werr, r.err, ctx.Err()); err != nil {
		return 0, fmt.Errorf("netemu: measuring %s → %s: %w", nt.Hosts[from].Name, nt.Hosts[to].Name, err)
	}
	return r.bits, nil
}
