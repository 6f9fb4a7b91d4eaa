package natsconn

import (
	"errors"
	"regexp"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
)

// Metrics count the permissions violations NATS reports to a process's
// connections.
type Metrics struct {
	violations *prometheus.CounterVec // operation, subject
}

// NewMetrics registers the counters with reg (nil: counted, not
// exported). Metrics already registered there are shared.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{violations: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "maas", Subsystem: "nats", Name: "permission_violations_total",
		Help: "Publishes and subscriptions the NATS server refused this process (its user may not use the subject; nothing was sent or received), by operation (publish, subscribe) and subject kind (SubjectKind).",
	}, []string{"operation", "subject"})}
	if reg != nil {
		if err := reg.Register(m.violations); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				m.violations = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	return m
}

var (
	defaultOnce    sync.Once
	defaultMetrics *Metrics
)

// Default are the process's metrics in prometheus.DefaultRegisterer.
func Default() *Metrics {
	defaultOnce.Do(func() { defaultMetrics = NewMetrics(prometheus.DefaultRegisterer) })
	return defaultMetrics
}

// Violations is how many violations of operation (publish, subscribe) on
// subjects of kind were counted.
func (m *Metrics) Violations(operation, kind string) float64 {
	var d dto.Metric
	if err := m.violations.WithLabelValues(operation, kind).Write(&d); err != nil {
		return 0
	}
	return d.GetCounter().GetValue()
}

// violationRe finds the operation and subject in the server's error:
// `Permissions Violation for Publish to "maas.param.j"`.
var violationRe = regexp.MustCompile(`(?i)(publish|subscription) to "([^"]*)"`)

// ParseViolation returns the operation (publish or subscribe) and the
// subject of a permissions violation; empty strings when err is none.
func ParseViolation(err error) (operation, subject string) {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return "", ""
	}
	m := violationRe.FindStringSubmatch(err.Error())
	if m == nil {
		return "unknown", ""
	}
	if strings.EqualFold(m[1], "publish") {
		return "publish", m[2]
	}
	return "subscribe", m[2]
}

// SubjectKind names the kind of a maas subject, a bounded label value:
// the area of a maas.<area>... subject (ctl, grad, param, pull, assign,
// model), objectstore for JetStream and Object Store subjects, inbox for
// replies, other for anything else.
func SubjectKind(subject string) string {
	switch {
	case strings.HasPrefix(subject, "$JS.") || strings.HasPrefix(subject, "$O."):
		return "objectstore"
	case strings.HasPrefix(subject, "_INBOX."):
		return "inbox"
	}
	parts := strings.SplitN(subject, ".", 3)
	if len(parts) >= 2 && parts[0] == "maas" {
		switch parts[1] {
		case "ctl", "grad", "param", "pull", "assign", "model":
			return parts[1]
		}
	}
	return "other"
}

// errorHandler is a connection's asynchronous error handler: it counts
// and logs permissions violations at warn, and logs other errors.
func (m *Metrics) errorHandler(log *zap.Logger) nats.ErrHandler {
	return func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if op, subject := ParseViolation(err); op != "" {
			m.violations.WithLabelValues(op, SubjectKind(subject)).Inc()
			log.Warn("NATS refused this process an operation its credential does not allow (permissions violation); nothing was sent or received",
				zap.String("operation", op), zap.String("subject", subject), zap.Error(err))
			return
		}
		log.Error("NATS error", zap.Error(err))
	}
}
