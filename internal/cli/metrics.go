package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// metricsFlagUsage is the help of --metrics-addr.
const metricsFlagUsage = "serve Prometheus metrics (GET /metrics: this process's counters, Go runtime and process figures) on this address, e.g. 0.0.0.0:9100 (default: none)"

// serveMetrics serves the default Prometheus registry on addr until ctx
// ends; "" serves nothing. A port that cannot be listened on fails at
// once, naming the flag.
func serveMetrics(ctx context.Context, addr string, log *zap.Logger) error {
	_, err := listenMetrics(ctx, addr, log)
	return err
}

// listenMetrics is serveMetrics, returning the address it listens on.
func listenMetrics(ctx context.Context, addr string, log *zap.Logger) (string, error) {
	if addr == "" {
		return "", nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics endpoint stopped", zap.String("addr", addr), zap.Error(err))
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("metrics", zap.String("addr", ln.Addr().String()))
	return ln.Addr().String(), nil
}
