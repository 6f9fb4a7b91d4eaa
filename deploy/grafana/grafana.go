// Package grafana holds a Grafana dashboard of maas's training metrics,
// maas-training.json: import it into Grafana with a Prometheus data source
// that scrapes every worker's and parameter server's --metrics-addr
// (docs/operations.md). Its test checks that every metric it queries is
// one the workers or the parameter servers export.
package grafana

import _ "embed"

// Dashboard is maas-training.json.
//
//go:embed maas-training.json
var Dashboard []byte
