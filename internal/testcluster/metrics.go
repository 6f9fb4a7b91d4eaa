package testcluster

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// MetricValue is the value in reg of the gauge or counter name (a
// histogram's sample count) whose labels include labels; ok is false when
// it has none such.
func MetricValue(reg prometheus.Gatherer, name string, labels map[string]string) (v float64, ok bool) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, false
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue metric
				}
			}
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			}
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// MustMetricValue is MetricValue, failing t when there is none.
func MustMetricValue(t testing.TB, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := MetricValue(reg, name, labels)
	if !ok {
		t.Fatalf("no %s%v", name, labels)
	}
	return v
}
