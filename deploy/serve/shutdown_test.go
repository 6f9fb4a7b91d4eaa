package serve

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/maas-ml/maas/tensor"
)

// nopBackend is a one-thread backend closed when the test ends.
func nopBackend(t *testing.T) tensor.Backend {
	b := tensor.NewGo(1)
	t.Cleanup(b.Close)
	return b
}

// TestGracefulShutdown: Shutdown waits for a request in flight, which
// gets its answer; then Serve returns nil and loads are refused.
func TestGracefulShutdown(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Logger, cfg.Registerer, cfg.Backend = zaptest.NewLogger(t), prometheus.NewRegistry(), nopBackend(t)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := newGate()
	defer g.release()
	s.beforeForward = g.hook
	a := newArtifact(t, cfg.Backend, 1, nil)
	if err := s.Load("tiny", 1, a.specYAML, a.weights); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()

	client := &http.Client{}
	defer client.CloseIdleConnections()
	type answer struct {
		code int
		body string
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := client.Post("http://"+ln.Addr().String()+"/v2/models/tiny/infer", "application/json",
			strings.NewReader(inferBody([]int{1, 784}, randomInput(1, 1), nil)))
		if err != nil {
			answered <- answer{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered <- answer{code: resp.StatusCode, body: string(b)}
	}()
	<-g.entered // the request is in its forward pass

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	waitFor(t, "Shutdown to begin", s.closing.Load)
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(20 * time.Millisecond):
	}
	g.release()
	if a := <-answered; a.err != nil || a.code != http.StatusOK {
		t.Errorf("request in flight: %d %s %v", a.code, a.body, a.err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if err := s.Load("tiny", 2, a.specYAML, a.weights); !errors.Is(err, ErrClosed) {
		t.Errorf("Load after Shutdown: %v", err)
	}
	if err := s.Serve(ln); !errors.Is(err, ErrClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}
