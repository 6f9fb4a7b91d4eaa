package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestBenchScaleBadFlags: settings that cannot be measured are refused,
// naming the flag, before any host is made.
func TestBenchScaleBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--dilation", "0.5"}, "--dilation"},
		{[]string{"--workers", "0,2"}, "--workers"},
		{[]string{"--rates", "-1"}, "--rates"},
		{[]string{"--steps", "1"}, "--steps"},
		{[]string{"--max-hosts", "0"}, "--max-hosts"},
		{[]string{"--real", "-2"}, "--real"},
		{[]string{"--compression", "zip"}, "--compression"},
	} {
		_, _, err := runRoot(context.Background(), append([]string{"bench", "scale"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("bench scale %v: %v, want an error naming %s", c.args, err, c.want)
		}
	}
}

// TestPlan: maas plan fits the shipped calibration, validates it on held
// out runs and predicts each K and rate, E(1) being 1 and E falling with
// K; bad settings are refused naming the flag.
func TestPlan(t *testing.T) {
	out, _, err := runRoot(context.Background(), "plan", "--validate", "--workers", "1,64,256", "--rates", "10")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"validation: fitted on", "within 10%", "predicted for 241546 parameters"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	var effs []float64
	for _, line := range strings.Split(out, "\n") {
		var k int
		var rate, step, comm, e float64
		if n, _ := fmt.Sscanf(line, "%d %g %g %g %g", &k, &rate, &step, &comm, &e); n == 5 {
			effs = append(effs, e)
		}
	}
	if len(effs) != 3 || effs[0] != 1 || !(effs[1] < effs[0] && effs[2] < effs[1]) {
		t.Errorf("E(K) for K = 1, 64, 256: %v; want 1 and falling", effs)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--servers", "0"}, "--servers"},
		{[]string{"--compression", "0.5"}, "--compression"},
		{[]string{"--server-cores", "0"}, "--server-cores"},
		{[]string{"--model", "resnet"}, "--model resnet"},
		{[]string{"--results", "/nonexistent.jsonl"}, "nonexistent"},
	} {
		if _, _, err := runRoot(context.Background(), append([]string{"plan"}, c.args...)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("plan %v: %v, want an error naming %s", c.args, err, c.want)
		}
	}
}
