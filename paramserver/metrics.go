package paramserver

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/maas-ml/maas/internal/promreg"
)

// Reasons a push is refused, the values of the reason label of
// maas_paramserver_refused_pushes_total.
const (
	refusedMalformed  = "malformed"   // not a gradient chunk of this build
	refusedUnknownJob = "unknown_job" // no such job served on the subject
	refusedFailed     = "failed"      // the job failed
	refusedEpoch      = "epoch"       // another membership epoch, or one being replaced
	refusedStale      = "stale"       // a finished step
	refusedFuture     = "future"      // a step not reached
	refusedRank       = "rank"        // no such rank, chunk or sample count
	refusedNotMember  = "not_member"  // the pushing worker is not in the epoch
	refusedOtherRank  = "other_rank"  // a member pushing as another rank
)

// metrics are the server's Prometheus metrics.
type metrics struct {
	refused    *prometheus.CounterVec   // reason
	barrier    *prometheus.HistogramVec // maas_job
	steps      *prometheus.CounterVec   // maas_job
	bytes      *prometheus.CounterVec   // maas_job, direction
	checkpoint *prometheus.GaugeVec     // maas_job
	epoch      *prometheus.GaugeVec     // maas_job
}

// Directions of maas_paramserver_bytes_total.
const (
	bytesReceived  = "received"  // gradient chunks taken
	bytesPublished = "published" // θ fanned out
)

// newMetrics registers the server's metrics with reg (nil: none are
// exported, but they are still counted).
func newMetrics(reg prometheus.Registerer) *metrics {
	job := []string{"maas_job"}
	return &metrics{
		refused: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "maas", Subsystem: "paramserver", Name: "refused_pushes_total",
			Help: "Gradient pushes refused, by reason: malformed, unknown_job, failed, epoch, stale, future, rank, not_member (a worker outside the job's membership epoch), other_rank (a member pushing as another).",
		}, []string{"reason"})),
		barrier: promreg.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "maas", Subsystem: "paramserver", Name: "barrier_seconds",
			Help:    "A step's barrier on this server, by job (maas_job): from the step's first gradient chunk to its last, after which the server applies the step.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
		}, job)),
		steps: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "maas", Subsystem: "paramserver", Name: "steps_total",
			Help: "Steps this server applied to its range, by job (maas_job).",
		}, job)),
		bytes: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "maas", Subsystem: "paramserver", Name: "bytes_total",
			Help: "Bytes of the data plane, by job (maas_job) and direction: received (gradient chunks taken), published (θ fanned out).",
		}, []string{"maas_job", "direction"})),
		checkpoint: promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "maas", Subsystem: "paramserver", Name: "checkpoint_timestamp_seconds",
			Help: "When this server last stored a checkpoint of its range of the job (maas_job), Unix seconds: time() minus it is the checkpoint's age.",
		}, job)),
		epoch: promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "maas", Subsystem: "paramserver", Name: "membership_epoch",
			Help: "The membership epoch this server serves the job (maas_job) in.",
		}, job)),
	}
}

// Collectors are the server's metrics, unregistered: what a dashboard of
// them may query (deploy/grafana's test).
func Collectors() []prometheus.Collector {
	m := newMetrics(nil)
	return []prometheus.Collector{m.refused, m.barrier, m.steps, m.bytes, m.checkpoint, m.epoch}
}
