package coordinator

import (
	"slices"
	"testing"
)

// TestSpreadByHost: a job's parameter servers are taken on as many hosts
// as there are, the hosts its kept servers are on last.
func TestSpreadByHost(t *testing.T) {
	members := map[string]MemberInfo{
		"a1": {ID: "a1", Host: "a"}, "a2": {ID: "a2", Host: "a"}, "a3": {ID: "a3", Host: "a"},
		"b1": {ID: "b1", Host: "b"}, "b2": {ID: "b2", Host: "b"},
		"c1": {ID: "c1", Host: "c"},
	}
	ids := []string{"a1", "a2", "a3", "b1", "b2", "c1"}
	if got, want := spreadByHost(ids, members, nil), []string{"a1", "b1", "c1", "a2", "b2", "a3"}; !slices.Equal(got, want) {
		t.Errorf("spread: %v, want %v", got, want)
	}
	// Servers on a and c kept: the standby on b first.
	if got, want := spreadByHost([]string{"a2", "a3", "b2"}, members, []string{"a1", "c1"}), []string{"b2", "a2", "a3"}; !slices.Equal(got, want) {
		t.Errorf("spread with a1 and c1 kept: %v, want %v", got, want)
	}
	// One host: the order of the ids.
	if got, want := spreadByHost([]string{"a1", "a2"}, members, nil), []string{"a1", "a2"}; !slices.Equal(got, want) {
		t.Errorf("one host: %v, want %v", got, want)
	}
}
