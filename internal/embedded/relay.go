package embedded

import (
	"net"
	"sync"
)

// relay carries one member's NATS connections to the server through a
// loopback listener of its own, so that the member can be cut off from
// the network alone. While it is partitioned every byte either way is
// held, not dropped, as on a network that loses a host's packets while TCP
// retransmits them: a short partition loses nothing, a long one outlasts
// somebody's timeout (the coordinator's member timeout, the server's write
// deadline, the client's pings) and that side gives the connection up.
// New connections are accepted and held too, so reconnecting does not
// get through either.
type relay struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	healed chan struct{} // non-nil while partitioned; closed by heal
	conns  map[net.Conn]struct{}
	closed bool
	done   chan struct{} // closed by close
	wg     sync.WaitGroup
}

// newRelay listens on a free loopback port and forwards to target
// (host:port).
func newRelay(target string) (*relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &relay{ln: ln, target: target, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// url is the NATS URL the member connects to.
func (r *relay) url() string { return "nats://" + r.ln.Addr().String() }

func (r *relay) accept() {
	defer r.wg.Done()
	for {
		in, err := r.ln.Accept()
		if err != nil {
			return
		}
		if !r.track(in) {
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.serve(in)
		}()
	}
}

// serve connects in to the target once traffic may flow and copies both
// ways until either side ends.
func (r *relay) serve(in net.Conn) {
	defer r.untrack(in)
	if !r.pass() {
		return
	}
	out, err := net.Dial("tcp", r.target)
	if err != nil {
		return
	}
	if !r.track(out) {
		return
	}
	defer r.untrack(out)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.copy(out, in) }()
	go func() { defer wg.Done(); r.copy(in, out) }()
	wg.Wait()
}

// copy moves src's bytes to dst, each read held while partitioned; when
// either side ends both are closed.
func (r *relay) copy(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !r.pass() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // io.EOF or a closed connection: either way the stream ends
			return
		}
	}
}

// pass waits while the relay is partitioned; false once it is closed.
func (r *relay) pass() bool {
	r.mu.Lock()
	healed := r.healed
	r.mu.Unlock()
	if healed == nil {
		select {
		case <-r.done:
			return false
		default:
			return true
		}
	}
	select {
	case <-healed:
		return true
	case <-r.done:
		return false
	}
}

// partition holds the member's traffic from now on.
func (r *relay) partition() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.healed == nil {
		r.healed = make(chan struct{})
	}
}

// heal lets the held traffic through.
func (r *relay) heal() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.healed != nil {
		close(r.healed)
		r.healed = nil
	}
}

func (r *relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.Close()
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *relay) untrack(c net.Conn) {
	c.Close()
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}

// close stops listening, closes every connection and waits for the
// copies to end.
func (r *relay) close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	close(r.done)
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.ln.Close()
	r.wg.Wait()
}
