package cli

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestMetricsEndpoint: --metrics-addr serves the process's Prometheus
// registry on /metrics, stops with its context, and a port it cannot
// listen on is an error naming the flag.
func TestMetricsEndpoint(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addr, err := listenMetrics(ctx, "127.0.0.1:0", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "go_goroutines") {
		t.Fatalf("GET /metrics: %d\n%.300s", resp.StatusCode, b)
	}
	if _, err := listenMetrics(ctx, addr, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "--metrics-addr") {
		t.Errorf("a port in use: %v, want an error naming --metrics-addr", err)
	}
	cancel()
	for range 100 { // Shutdown runs in the background
		if _, err := http.Get("http://" + addr + "/metrics"); err != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Error("the metrics endpoint still answers after its context ended")
}
