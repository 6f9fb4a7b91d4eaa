package paramserver

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
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
	refused *prometheus.CounterVec // reason
}

// newMetrics registers the server's metrics with reg (nil: none are
// exported, but they are still counted).
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{refused: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "maas", Subsystem: "paramserver", Name: "refused_pushes_total",
		Help: "Gradient pushes refused, by reason: malformed, unknown_job, failed, epoch, stale, future, rank, not_member (a worker outside the job's membership epoch), other_rank (a member pushing as another).",
	}, []string{"reason"})}
	if reg != nil {
		if err := reg.Register(m.refused); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				m.refused = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	return m
}
