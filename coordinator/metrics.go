package coordinator

import (
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/wire"
)

// metrics are the coordinator's Prometheus metrics.
type metrics struct {
	// forged counts control messages dropped because their payload names
	// another member than their subject: subject is register, heartbeat,
	// progress, report or done.
	forged *prometheus.CounterVec
}

// newMetrics registers the node's metrics with reg (nil: counted, not
// exported). A second node on the same Registerer shares the first's.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{forged: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "maas", Subsystem: "coordinator", Name: "forged_control_messages_total",
		Help: "Control messages dropped because the member id they carry is not the one their subject ends in (a process speaking for another member), by subject: register, heartbeat, progress, report, done.",
	}, []string{"subject"})}
	if reg != nil {
		if err := reg.Register(m.forged); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				m.forged = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	return m
}

// fromMember reports whether control message m, whose payload names
// member id, came on id's own subject (the one its NATS permissions let
// it publish on). A message that did not is dropped, counted and logged:
// some process speaks for another member.
func (n *Node) fromMember(m *nats.Msg, kind, id string) bool {
	from := wire.MemberOf(m.Subject)
	if from == id {
		return true
	}
	n.metrics.forged.WithLabelValues(kind).Inc()
	n.log.Warn("dropped a control message that speaks for another member",
		zap.String("subject", m.Subject), zap.String("sender", from), zap.String("claims", id))
	return false
}
