// Package promreg registers Prometheus collectors the way every maas
// process does: on a registerer that may be nil (counted, not exported),
// sharing a collector already registered there under the same name (two
// members in one process, `maas local`).
package promreg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg and returns the collector to use: c, or
// the one of the same description registered before.
func Register[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if prev, ok := are.ExistingCollector.(T); ok {
				return prev
			}
		}
	}
	return c
}
