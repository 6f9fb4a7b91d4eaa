package cli

import (
	"context"
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
	} {
		_, _, err := runRoot(context.Background(), append([]string{"bench", "scale"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("bench scale %v: %v, want an error naming %s", c.args, err, c.want)
		}
	}
}
