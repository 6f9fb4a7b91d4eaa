package coordinator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/maas-ml/maas/coordinator"
	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/testcluster"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type testNode struct {
	cfg  coordinator.Config
	node *coordinator.Node
}

func openNode(t *testing.T, cfg coordinator.Config, url string) *coordinator.Node {
	t.Helper()
	n, err := coordinator.Open(cfg, testcluster.ConnectURL(t, url))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func jobCount(n *coordinator.Node) int {
	var c int
	n.FSM().Read(func(st *coordinator.State) { c = len(st.Jobs) })
	return c
}

// TestThreeNodesFollowerRestart: three coordinators on real Raft (TCP,
// bolt on disk); a follower that is stopped while the leader commits
// restarts from its data directory, replays its log and catches up; a
// follower redirects API calls to the leader.
func TestThreeNodesFollowerRestart(t *testing.T) {
	s := testcluster.StartNATS(t)
	url := s.ClientURL()
	dir := t.TempDir()
	nodes := make([]*testNode, 3)
	for i := range nodes {
		cfg := coordinator.DefaultConfig()
		cfg.ID = fmt.Sprintf("c%d", i+1)
		cfg.RaftAddr, cfg.HTTPAddr = freeAddr(t), "127.0.0.1:0"
		cfg.DataDir = filepath.Join(dir, cfg.ID)
		cfg.Bootstrap = i == 0
		cfg.HeartbeatTimeout, cfg.ElectionTimeout = 300*time.Millisecond, 300*time.Millisecond
		nodes[i] = &testNode{cfg: cfg, node: openNode(t, cfg, url)}
	}
	defer func() {
		for _, n := range nodes {
			if n.node != nil {
				n.node.Close()
			}
		}
	}()
	leader := nodes[0].node
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leader.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		if err := leader.Join(t.Context(), n.cfg.ID, n.cfg.RaftAddr, n.node.HTTPAddr()); err != nil {
			t.Fatal(err)
		}
	}
	submit := func(i int) {
		t.Helper()
		if _, err := leader.Propose(t.Context(), coordinator.Command{Type: coordinator.CmdSubmitJob, RequestID: fmt.Sprint("job-", i),
			Job: &coordinator.JobRecord{Name: "j", Spec: "x", Workers: 1, ParameterServers: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	submit(1)
	waitFor(t, "followers to apply the first job", 5*time.Second, func() bool {
		return jobCount(nodes[1].node) == 1 && jobCount(nodes[2].node) == 1
	})

	// A follower redirects an API call to the leader.
	var jobs []api.JobStatus
	resp, err := http.Get("http://" + nodes[2].node.HTTPAddr() + "/v1/jobs")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&jobs)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(jobs) != 1 || resp.Request.URL.Host != leader.HTTPAddr() {
		t.Fatalf("GET /v1/jobs on a follower: %d, %d jobs, answered by %s (leader %s)", resp.StatusCode, len(jobs), resp.Request.URL.Host, leader.HTTPAddr())
	}
	body, _ := json.Marshal(api.SubmitRequest{Spec: "name: x"})
	resp, err = http.Post("http://"+nodes[1].node.HTTPAddr()+"/v1/jobs", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Request.URL.Host != leader.HTTPAddr() {
		t.Fatalf("POST on a follower: %d from %s; want the leader's 400 for a bad spec", resp.StatusCode, resp.Request.URL.Host)
	}

	// Stop follower c3, commit more, restart it from disk.
	nodes[2].node.Close()
	nodes[2].node = nil
	for i := 2; i <= 5; i++ {
		submit(i)
	}
	if got := jobCount(leader); got != 5 {
		t.Fatalf("leader has %d jobs", got)
	}
	nodes[2].node = openNode(t, nodes[2].cfg, url)
	waitFor(t, "the restarted follower to replay and catch up", 10*time.Second, func() bool { return jobCount(nodes[2].node) == 5 })
	var a, b []byte
	leader.FSM().Read(func(st *coordinator.State) { a, _ = json.Marshal(st.Jobs) })
	nodes[2].node.FSM().Read(func(st *coordinator.State) { b, _ = json.Marshal(st.Jobs) })
	if !bytes.Equal(a, b) {
		t.Fatal("the restarted follower's jobs differ from the leader's")
	}
	// All three FSMs: at the same applied index, the same state.
	waitFor(t, "the three FSMs at one index", 10*time.Second, func() bool {
		var first uint64
		for i, n := range nodes {
			idx, _, err := n.node.FSM().Digest()
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = idx
			} else if idx != first {
				return false
			}
		}
		return true
	})
	_, want, _ := nodes[0].node.FSM().Digest()
	for _, n := range nodes[1:] {
		if _, got, _ := n.node.FSM().Digest(); got != want {
			t.Fatalf("FSM digests differ at the same index: %s vs %s", got, want)
		}
	}

	// c3's host is gone for good: removed through a follower (the call
	// goes to the leader), the other two commit on their own.
	c, err := api.NewClient("http://" + nodes[1].node.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveNode(t.Context(), "c9"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("removing a coordinator not in the configuration: %v, want 404", err)
	}
	if err := c.RemoveNode(t.Context(), "c3"); err != nil {
		t.Fatalf("remove c3: %v", err)
	}
	nodes[2].node.Close()
	nodes[2].node = nil
	cs, err := c.Cluster(t.Context())
	if err != nil || len(cs.Nodes) != 2 || slices.ContainsFunc(cs.Nodes, func(n api.Node) bool { return n.ID == "c3" }) {
		t.Fatalf("after removing c3 the cluster lists %+v (%v), want c1 and c2", cs.Nodes, err)
	}
	submit(6)
	waitFor(t, "c2 to apply a job committed without c3", 5*time.Second, func() bool { return jobCount(nodes[1].node) == 6 })
}
