package worker

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// The phases of a step, the values of the phase label of
// maas_worker_step_seconds.
const (
	phaseCompute = "compute" // forward and backward (a benchmark job: the wait in their place)
	phasePush    = "push"    // every gradient chunk sent and acknowledged
	phaseWait    = "wait"    // waiting for θ: the barrier, the update and the fan-out
	// phaseOverlapped is not a part of the step: the time pushes ran
	// beside compute.
	phaseOverlapped = "overlapped"
)

// metrics are the worker's Prometheus metrics.
type metrics struct {
	step    *prometheus.HistogramVec // phase
	samples prometheus.Counter
}

// newMetrics registers the worker's metrics with reg (nil: counted, not
// exported). Metrics already registered there are shared.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		step: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "maas", Subsystem: "worker", Name: "step_seconds",
			Help:    "Time of a step's phases on this worker: compute (forward and backward of its slice), push (after backward, until every gradient bucket is acknowledged), wait (for the parameters: the servers' barrier, update and fan-out); these add up to the step. overlapped: the time the pushes ran beside backward (hidden).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"phase"}),
		samples: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "maas", Subsystem: "worker", Name: "samples_total",
			Help: "Training samples this worker has computed steps on.",
		}),
	}
	if reg == nil {
		return m
	}
	if err := reg.Register(m.step); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			m.step = are.ExistingCollector.(*prometheus.HistogramVec)
		}
	}
	if err := reg.Register(m.samples); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			m.samples = are.ExistingCollector.(prometheus.Counter)
		}
	}
	return m
}

// observe records a finished step.
func (m *metrics) observe(s StepInfo) {
	m.step.WithLabelValues(phaseCompute).Observe(s.Compute.Seconds())
	m.step.WithLabelValues(phasePush).Observe(s.Push.Seconds())
	m.step.WithLabelValues(phaseWait).Observe(s.Wait.Seconds())
	m.step.WithLabelValues(phaseOverlapped).Observe(s.Overlapped.Seconds())
	m.samples.Add(float64(s.N))
}
