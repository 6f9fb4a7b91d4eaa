package coordinator

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// tlsStream is the Raft stream layer over mutual TLS: every connection
// between coordinators, in either direction, presents a certificate of the
// cluster's CA and accepts only one (Config.RaftTLS). A peer without one,
// with one from another CA, or speaking plain TCP fails its handshake and
// is dropped before Raft reads a byte from it. Handshakes run in their own
// goroutines, bounded by handshakeTimeout, so a slow peer holds up no
// other.
type tlsStream struct {
	ln    net.Listener
	cfg   *tls.Config
	conns chan net.Conn
	errc  chan error
	done  chan struct{}
	once  sync.Once
}

// handshakeTimeout bounds a Raft peer's TLS handshake.
const handshakeTimeout = 5 * time.Second

// listenRaftTLS listens on addr for Raft connections over TLS with cfg.
func listenRaftTLS(addr string, cfg *tls.Config) (*tlsStream, error) {
	if cfg == nil || len(cfg.Certificates) == 0 || cfg.ClientCAs == nil || cfg.RootCAs == nil {
		return nil, errors.New("coordinator: Raft over TLS needs the host's certificate and the cluster's CA for both directions (cluster.PeerTLS)")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || tcp.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("coordinator: raft address %s must name an address the other coordinators can reach", addr)
	}
	srv := cfg.Clone()
	srv.ClientAuth = tls.RequireAndVerifyClientCert
	s := &tlsStream{ln: ln, cfg: cfg, conns: make(chan net.Conn), errc: make(chan error, 1), done: make(chan struct{})}
	go s.accept(srv)
	return s, nil
}

// accept takes connections and hands those whose handshake succeeds to
// Accept.
func (s *tlsStream) accept(srv *tls.Config) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.errc <- err
			return
		}
		go func() {
			tc := tls.Server(c, srv)
			tc.SetDeadline(time.Now().Add(handshakeTimeout))
			if err := tc.Handshake(); err != nil {
				c.Close()
				return
			}
			tc.SetDeadline(time.Time{})
			select {
			case s.conns <- tc:
			case <-s.done:
				tc.Close()
			}
		}()
	}
}

// Accept returns the next connection that completed its handshake.
func (s *tlsStream) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case err := <-s.errc:
		s.errc <- err // every later call fails too
		return nil, err
	}
}

// Close stops listening.
func (s *tlsStream) Close() error {
	s.once.Do(func() { close(s.done) })
	return s.ln.Close()
}

// Addr is the address the other coordinators reach this one at.
func (s *tlsStream) Addr() net.Addr { return s.ln.Addr() }

// Dial connects to the coordinator at address, checking its certificate
// against the cluster's CA for the host part of address.
func (s *tlsStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	host, _, err := net.SplitHostPort(string(address))
	if err != nil {
		return nil, err
	}
	c := s.cfg.Clone()
	c.ServerName = host
	d := &net.Dialer{Timeout: timeout}
	return tls.DialWithDialer(d, "tcp", string(address), c)
}
