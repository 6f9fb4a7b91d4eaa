package serve

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/tensor"
)

// Server serves models over the Open Inference Protocol V2. It is safe for
// concurrent use.
type Server struct {
	cfg      Config
	log      *zap.Logger
	met      *metrics
	gatherer prometheus.Gatherer
	backend  tensor.Backend
	own      *tensor.GoBackend // the backend New made, closed by Shutdown
	handler  http.Handler

	table   atomic.Pointer[table]
	closing atomic.Bool // Shutdown has begun: not ready

	mu      sync.Mutex // guards table writes, closed, servers and batchers.Add
	closed  bool
	servers []*http.Server

	// batchers counts the running batcher goroutines.
	batchers sync.WaitGroup

	// beforeForward, if set before models load, is called by their
	// batchers before each forward pass (tests).
	beforeForward func()
	// beforeBuild, if set, is called as a new version starts to build
	// (tests).
	beforeBuild func()
}

// New returns a server with no models; load some with Load, LoadDir,
// LoadIndex or WatchPublished.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, backend: cfg.Backend}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.cfg.Version == "" {
		s.cfg.Version = "dev"
	}
	if s.cfg.Instances == 0 {
		s.cfg.Instances = 1
	}
	reg := cfg.Registerer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, s.gatherer = r, r
	} else if g, ok := reg.(prometheus.Gatherer); ok {
		s.gatherer = g
	} else {
		s.gatherer = prometheus.DefaultGatherer
	}
	met, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s.met = met
	if s.backend == nil {
		s.own = tensor.NewGo(0)
		s.backend = s.own
	}
	s.table.Store(emptyTable)
	s.handler = s.routes()
	return s, nil
}

// Handler returns the server's HTTP handler (every endpoint, with the
// token check and the access log).
func (s *Server) Handler() http.Handler { return s.handler }

// ListenAndServe listens on Config.Addr and serves until Shutdown.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Serve answers HTTP requests (HTTPS with Config.TLS) on ln until
// Shutdown, after which it returns nil; it closes ln.
func (s *Server) Serve(ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	s.servers = append(s.servers, hs)
	s.mu.Unlock()
	var err error
	if s.cfg.TLS != nil {
		hs.TLSConfig = s.cfg.TLS.Clone()
		err = hs.ServeTLS(ln, "", "")
	} else {
		err = hs.Serve(ln)
	}
	if !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops the server gracefully: /v2/health/ready answers 503, the
// listeners close, requests in flight finish (until ctx ends), then every
// model is released. Calling it again does nothing.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.closing.Store(true)
	servers := s.servers
	s.mu.Unlock()

	var errs []error
	for _, hs := range servers {
		if err := hs.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	s.mu.Lock()
	old := s.table.Swap(&table{closed: true})
	s.mu.Unlock()
	for _, vs := range old.models {
		for _, v := range vs {
			v.retire()
		}
	}
	done := make(chan struct{})
	go func() { s.batchers.Wait(); close(done) }()
	select {
	case <-done:
		if s.own != nil {
			s.own.Close()
		}
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}

// acquire resolves a request to a version of a model (num 0: the newest)
// and holds it until release.
func (s *Server) acquire(name string, num int) (*version, error) {
	for {
		v, err := s.table.Load().lookup(name, num)
		if err != nil {
			return nil, err
		}
		if v.acquire() {
			return v, nil
		}
		// v was retired after the load: the table has moved on; look again.
	}
}
