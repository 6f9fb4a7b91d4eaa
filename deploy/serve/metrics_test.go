package serve

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// histogram returns an observer's sample count and sum.
func histogram(t *testing.T, o prometheus.Observer) (uint64, float64) {
	t.Helper()
	var m dto.Metric
	if err := o.(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

func TestMetrics(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	loadTiny(t, ts, nil)
	body := inferBody([]int{2, 784}, randomInput(2, 1), nil)
	for range 3 {
		ts.infer(t, "/v2/models/tiny/infer", body)
	}
	ts.do(t, http.MethodPost, "/v2/models/tiny/infer", `{`)
	ts.do(t, http.MethodPost, "/v2/models/unknown/infer", body)

	if got := testutil.ToFloat64(ts.met.requests.WithLabelValues("tiny", "1", "200")); got != 3 {
		t.Errorf("requests{200} = %v, want 3", got)
	}
	if got := testutil.ToFloat64(ts.met.requests.WithLabelValues("tiny", "1", "400")); got != 1 {
		t.Errorf("requests{400} = %v, want 1", got)
	}
	if n, _ := histogram(t, ts.met.latency.WithLabelValues("tiny", "1")); n != 4 {
		t.Errorf("latency observations = %d, want 4", n)
	}
	if n, sum := histogram(t, ts.met.batchSize.WithLabelValues("tiny", "1")); n != 3 || sum != 6 {
		t.Errorf("batch sizes: %d batches of %v samples, want 3 of 6", n, sum)
	}
	if got := testutil.ToFloat64(ts.met.loads.WithLabelValues("tiny")); got != 1 {
		t.Errorf("loads = %v", got)
	}

	code, b := ts.do(t, http.MethodGet, "/metrics", "")
	text := string(b)
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, name := range []string{"maas_serve_requests_total", "maas_serve_request_duration_seconds", "maas_serve_batch_size",
		"maas_serve_queue_depth", "maas_serve_loads_total"} {
		if !strings.Contains(text, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if strings.Contains(text, `model="unknown"`) {
		t.Error("a name from a request path became a label value")
	}
}

// TestRegistererShared: two servers on one Registerer is a config error,
// not a panic.
func TestRegistererShared(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.Registerer = reg
	cfg.Backend = nopBackend(t)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(t.Context())
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("second New on one registry: %v", err)
	}
}
