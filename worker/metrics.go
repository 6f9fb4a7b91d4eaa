package worker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/maas-ml/maas/internal/promreg"
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
	loss    *prometheus.GaugeVec   // maas_job
	epoch   *prometheus.GaugeVec   // maas_job
	bytes   *prometheus.CounterVec // maas_job, direction
}

// Directions of maas_worker_bytes_total.
const (
	bytesPushed   = "pushed"   // gradient buckets sent (each try)
	bytesReceived = "received" // θ taken: fanned out or pulled
)

// newMetrics registers the worker's metrics with reg (nil: counted, not
// exported). Metrics already registered there are shared.
func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		step: promreg.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "maas", Subsystem: "worker", Name: "step_seconds",
			Help:    "Time of a step's phases on this worker: compute (forward and backward of its slice), push (after backward, until every gradient bucket is acknowledged), wait (for the parameters: the servers' barrier, update and fan-out); these add up to the step. overlapped: the time the pushes ran beside backward (hidden).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"phase"})),
		samples: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "maas", Subsystem: "worker", Name: "samples_total",
			Help: "Training samples this worker has computed steps on.",
		})),
		loss: promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "maas", Subsystem: "worker", Name: "loss",
			Help: "Mean training loss of this worker's slice at its last step, by job (maas_job).",
		}, []string{"maas_job"})),
		epoch: promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "maas", Subsystem: "worker", Name: "membership_epoch",
			Help: "The membership epoch this worker is training the job (maas_job) in.",
		}, []string{"maas_job"})),
		bytes: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "maas", Subsystem: "worker", Name: "bytes_total",
			Help: "Bytes of the data plane, by job (maas_job) and direction: pushed (gradient buckets sent, every try), received (θ taken, fanned out or pulled).",
		}, []string{"maas_job", "direction"})),
	}
}

// observe records a finished step of job in membership epoch.
func (m *metrics) observe(job string, epoch uint64, s StepInfo) {
	m.step.WithLabelValues(phaseCompute).Observe(s.Compute.Seconds())
	m.step.WithLabelValues(phasePush).Observe(s.Push.Seconds())
	m.step.WithLabelValues(phaseWait).Observe(s.Wait.Seconds())
	m.step.WithLabelValues(phaseOverlapped).Observe(s.Overlapped.Seconds())
	m.samples.Add(float64(s.N))
	m.loss.WithLabelValues(job).Set(float64(s.Loss))
	m.epoch.WithLabelValues(job).Set(float64(epoch))
}

// Collectors are the worker's metrics, unregistered: what a dashboard of
// them may query (deploy/grafana's test).
func Collectors() []prometheus.Collector {
	m := newMetrics(nil)
	return []prometheus.Collector{m.step, m.samples, m.loss, m.epoch, m.bytes}
}
