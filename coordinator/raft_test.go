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
	"strings"
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

// startThree starts coordinators c1 (the leader), c2 and c3 on real Raft
// (TCP, bolt on disk) and NATS at url; they stop with the test, but for
// those whose node a test set to nil. Each keeps its API address for a
// restart with its cfg.
func startThree(t *testing.T, url string) []*testNode {
	t.Helper()
	dir := t.TempDir()
	nodes := make([]*testNode, 3)
	t.Cleanup(func() {
		for _, n := range nodes {
			if n != nil && n.node != nil {
				n.node.Close()
			}
		}
	})
	for i := range nodes {
		cfg := coordinator.DefaultConfig()
		cfg.ID = fmt.Sprintf("c%d", i+1)
		cfg.RaftAddr, cfg.HTTPAddr = freeAddr(t), "127.0.0.1:0"
		cfg.DataDir = filepath.Join(dir, cfg.ID)
		cfg.Bootstrap = i == 0
		cfg.HeartbeatTimeout, cfg.ElectionTimeout = 300*time.Millisecond, 300*time.Millisecond
		nodes[i] = &testNode{cfg: cfg, node: openNode(t, cfg, url)}
		nodes[i].cfg.HTTPAddr = nodes[i].node.HTTPAddr()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := nodes[0].node.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		if err := nodes[0].node.Join(t.Context(), n.cfg.ID, n.cfg.RaftAddr, n.node.HTTPAddr()); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

// TestThreeNodesFollowerRestart: three coordinators on real Raft (TCP,
// bolt on disk); a follower that is stopped while the leader commits
// restarts from its data directory, replays its log and catches up; a
// follower redirects API calls to the leader.
func TestThreeNodesFollowerRestart(t *testing.T) {
	url := testcluster.StartNATS(t).ClientURL()
	nodes := startThree(t, url)
	leader := nodes[0].node
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

// TestClientWaitsForElection: with two of three coordinators down a
// follower knows no leader and answers 503 with reason no_leader; an API
// client waits for an election (telling its notice once) and succeeds
// when a second coordinator comes back within its wait, and fails with
// that answer, saying how long it waited, when none does.
func TestClientWaitsForElection(t *testing.T) {
	url := testcluster.StartNATS(t).ClientURL()
	nodes := startThree(t, url)
	waitFor(t, "c3 to know the leader", 5*time.Second, func() bool {
		_, id := nodes[2].node.Raft().LeaderWithID()
		return id == "c1"
	})
	// c1 and c2 go: c3 alone cannot elect a leader.
	for _, i := range []int{0, 1} {
		nodes[i].node.Close()
		nodes[i].node = nil
	}
	waitFor(t, "c3 to know no leader", 10*time.Second, func() bool {
		_, id := nodes[2].node.Raft().LeaderWithID()
		return id == ""
	})
	resp, err := http.Get("http://" + nodes[2].node.HTTPAddr() + "/v1/jobs")
	if err != nil {
		t.Fatal(err)
	}
	var e api.Error
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != 503 || e.Reason != api.ReasonNoLeader || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("GET /v1/jobs on c3 without a leader: %d %+v", resp.StatusCode, e)
	}

	var notices int
	c, err := api.NewClient("http://"+nodes[2].node.HTTPAddr(), api.WithLeaderWait(1500*time.Millisecond, func(time.Duration) { notices++ }))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Jobs(t.Context())
	if waited := time.Since(start); !errors.Is(err, api.ErrNoLeader) || !strings.Contains(err.Error(), "no leader after waiting 1.5s") || waited < 1500*time.Millisecond || notices != 1 {
		t.Fatalf("no majority: %v after %v, %d notices; want ErrNoLeader after waiting 1.5 s, one notice", err, waited, notices)
	}

	// c2 comes back during the wait: c2 and c3 elect a leader, the call
	// goes through.
	notices = 0
	c, err = api.NewClient("http://"+nodes[2].node.HTTPAddr(), api.WithLeaderWait(20*time.Second, func(time.Duration) { notices++ }))
	if err != nil {
		t.Fatal(err)
	}
	nc := testcluster.ConnectURL(t, url)
	reopened := make(chan error, 1)
	go func() {
		time.Sleep(500 * time.Millisecond)
		n, err := coordinator.Open(nodes[1].cfg, nc)
		nodes[1].node = n
		reopened <- err
	}()
	start = time.Now()
	_, err = c.Submit(t.Context(), api.SubmitRequest{Spec: "name: x\nepochs: -1\n"})
	if err := <-reopened; err != nil {
		t.Fatal(err)
	}
	if !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("submit while c2 returns: %v; want the new leader's 400 for the bad spec", err)
	}
	t.Logf("the submit went through after %v, when c2 and c3 had elected a leader (%d notice)", time.Since(start).Round(time.Millisecond), notices)
	if notices != 1 {
		t.Errorf("%d notices of the wait, want 1", notices)
	}
}
