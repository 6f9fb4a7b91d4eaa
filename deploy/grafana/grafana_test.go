package grafana

import (
	"encoding/json"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maas-ml/maas/paramserver"
	"github.com/maas-ml/maas/worker"
)

// exported are the metric names the workers and parameter servers export,
// each with its label names, and whether it is a histogram.
func exported(t *testing.T) map[string][]string {
	t.Helper()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	vl := regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
	out := map[string][]string{}
	for _, c := range append(worker.Collectors(), paramserver.Collectors()...) {
		ch := make(chan *prometheus.Desc, 4)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			m := fq.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("no name in %s", d)
			}
			var labels []string
			if l := vl.FindStringSubmatch(d.String()); l != nil && strings.TrimSpace(l[1]) != "" {
				for _, s := range strings.Split(l[1], ",") {
					labels = append(labels, strings.TrimSpace(s))
				}
			}
			out[m[1]] = labels
			if _, ok := c.(*prometheus.HistogramVec); ok {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					out[m[1]+suffix] = append(slices.Clone(labels), "le")
				}
			}
		}
	}
	return out
}

// TestDashboardQueriesExist: the dashboard parses; every panel has a
// query; every metric a query names is exported by a worker or a
// parameter server, and every label a query groups by is one of the
// metric's.
func TestDashboardQueriesExist(t *testing.T) {
	var d struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(Dashboard, &d); err != nil {
		t.Fatalf("maas-training.json: %v", err)
	}
	if d.Title == "" || len(d.Panels) < 8 {
		t.Fatalf("dashboard %q with %d panels", d.Title, len(d.Panels))
	}
	have := exported(t)
	name := regexp.MustCompile(`\bmaas_[a-z_]+\b`)
	by := regexp.MustCompile(`by \(([^)]*)\)`)
	used := map[string]bool{}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			metrics := name.FindAllString(by.ReplaceAllString(q.Expr, ""), -1) // the names outside the groupings
			if len(metrics) == 0 {
				t.Errorf("panel %q: query %q names no maas metric", p.Title, q.Expr)
			}
			for _, m := range metrics {
				labels, ok := have[m]
				if !ok {
					t.Errorf("panel %q: %s is not exported by a worker or a parameter server", p.Title, m)
					continue
				}
				used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")] = true
				for _, g := range by.FindAllStringSubmatch(q.Expr, -1) {
					for _, l := range strings.Split(g[1], ",") {
						if l = strings.TrimSpace(l); l != "instance" && !slices.Contains(labels, l) {
							t.Errorf("panel %q: %s has no label %q (it has %v)", p.Title, m, l, labels)
						}
					}
				}
			}
		}
	}
	// Every training metric is on the dashboard.
	var missing []string
	for m := range have {
		if !strings.HasSuffix(m, "_bucket") && !strings.HasSuffix(m, "_sum") && !strings.HasSuffix(m, "_count") && !used[m] {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("metrics on no panel: %v", missing)
	}
}
