package serve

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus metrics. Model and version labels
// only ever take the values of served models, never a name from a request
// path, so their number stays bounded.
type metrics struct {
	requests     *prometheus.CounterVec   // model, version, code
	latency      *prometheus.HistogramVec // model, version
	batchSize    *prometheus.HistogramVec // model, version
	queueDepth   *prometheus.GaugeVec     // model, version
	loadFailures *prometheus.CounterVec   // model
	loads        *prometheus.CounterVec   // model
	authRefusals *prometheus.CounterVec   // reason
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "maas", Subsystem: "serve", Name: "requests_total",
			Help: "Inference requests answered, by model, version and HTTP status code.",
		}, []string{"model", "version", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "maas", Subsystem: "serve", Name: "request_duration_seconds",
			Help:    "Time from an inference request's arrival to its answer.",
			Buckets: prometheus.ExponentialBuckets(100e-6, 2, 16), // 100 µs … 3.3 s
		}, []string{"model", "version"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "maas", Subsystem: "serve", Name: "batch_size",
			Help:    "Samples per forward pass.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13), // 1 … 4096
		}, []string{"model", "version"}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "maas", Subsystem: "serve", Name: "queue_depth",
			Help: "Requests waiting for their model version's batcher.",
		}, []string{"model", "version"}),
		loadFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "maas", Subsystem: "serve", Name: "load_failures_total",
			Help: "Model versions that failed to load (the previous version kept serving).",
		}, []string{"model"}),
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "maas", Subsystem: "serve", Name: "loads_total",
			Help: "Model versions loaded.",
		}, []string{"model"}),
		authRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "maas", Subsystem: "serve", Name: "auth_refusals_total",
			Help: "Requests refused for their bearer token (401), by reason: no_token, bad_token.",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.batchSize, m.queueDepth, m.loadFailures, m.loads, m.authRefusals} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.Join(ErrConfig, errors.New("serve: metrics already registered with this Registerer; give each Server its own"))
			}
			return nil, err
		}
	}
	return m, nil
}

// forget removes a released version's queue gauge, which would otherwise
// stay at its last value.
func (m *metrics) forget(model, version string) {
	m.queueDepth.DeleteLabelValues(model, version)
}
