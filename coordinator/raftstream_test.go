package coordinator_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/maas-ml/maas/coordinator"
	"github.com/maas-ml/maas/deploy/cluster/clustertest"
	"github.com/maas-ml/maas/internal/testcluster"
)

// TestRaftTLS: two coordinators carry Raft over mutual TLS and replicate a
// job; the Raft port refuses plain TCP, a client without a certificate
// and one whose certificate another CA signed, each before Raft reads a
// byte, and the cluster goes on as before.
func TestRaftTLS(t *testing.T) {
	s, other := clustertest.New(t), clustertest.New(t)
	nats := testcluster.StartNATS(t)
	open := func(id string, bootstrap bool) (*coordinator.Node, coordinator.Config) {
		cfg := coordinator.DefaultConfig()
		cfg.ID, cfg.RaftAddr, cfg.HTTPAddr = id, freeAddr(t), freeAddr(t)
		cfg.DataDir, cfg.Bootstrap = filepath.Join(t.TempDir(), id), bootstrap
		cfg.HeartbeatTimeout, cfg.ElectionTimeout = 300*time.Millisecond, 300*time.Millisecond
		cfg.RaftTLS = s.PeerTLS(t)
		n := openNode(t, cfg, nats.ClientURL())
		t.Cleanup(func() { n.Close() })
		return n, cfg
	}
	leader, lcfg := open("c1", true)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := leader.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	follower, fcfg := open("c2", false)
	if err := leader.Join(t.Context(), "c2", fcfg.RaftAddr, follower.HTTPAddr()); err != nil {
		t.Fatalf("join over TLS: %v", err)
	}

	// A Raft RPC to the leader from a transport of the same cluster gets
	// an answer; from plain TCP, without a certificate or with one of
	// another CA it fails.
	vote := func(trans *raft.NetworkTransport, err error) error {
		t.Helper()
		if err != nil {
			t.Fatalf("transport: %v", err)
		}
		defer trans.Close()
		var resp raft.RequestVoteResponse
		// Term 0: an answer, never a vote, and the leader stays.
		return trans.RequestVote("c1", raft.ServerAddress(lcfg.RaftAddr),
			&raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("x"), Addr: []byte("x")}, Term: 0}, &resp)
	}
	tlsTransport := func(c *tls.Config) (*raft.NetworkTransport, error) {
		stream, err := coordinator.ListenRaftTLS("127.0.0.1:0", c)
		if err != nil {
			return nil, err
		}
		return raft.NewNetworkTransport(stream, 1, 2*time.Second, io.Discard), nil
	}
	if err := vote(tlsTransport(s.PeerTLS(t))); err != nil {
		t.Fatalf("a Raft RPC with the cluster's certificate: %v", err)
	}
	if err := vote(raft.NewTCPTransport("127.0.0.1:0", nil, 1, 2*time.Second, io.Discard)); err == nil {
		t.Error("a Raft RPC over plain TCP was answered")
	}
	if err := vote(tlsTransport(other.PeerTLS(t))); err == nil {
		t.Error("a Raft RPC with another CA's certificate was answered")
	}
	// The same from a TLS client that skips its own check: the leader's
	// check of the client's certificate refuses it.
	c := other.PeerTLS(t)
	c.InsecureSkipVerify = true
	if err := vote(tlsTransport(c)); err == nil {
		t.Error("a Raft RPC with another CA's certificate, not checking the leader's, was answered")
	}
	conn, err := tls.Dial("tcp", lcfg.RaftAddr, s.ClientTLS(t, false))
	if err == nil {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("a TLS client without a certificate was not refused at once: %v", err)
	}

	// Replication still works over TLS after the refused attempts. On a
	// loaded machine the two may hold an election in between (300 ms
	// timeouts): the job goes to whichever leads.
	waitFor(t, "the job proposed on the leader", 10*time.Second, func() bool {
		for _, n := range []*coordinator.Node{leader, follower} {
			if !n.IsLeader() {
				continue
			}
			_, err := n.Propose(t.Context(), coordinator.Command{Type: coordinator.CmdSubmitJob, RequestID: "job-1",
				Job: &coordinator.JobRecord{Name: "j", Spec: "x", Workers: 1, ParameterServers: 1}})
			if err == nil {
				return true
			}
			if !errors.Is(err, coordinator.ErrNotLeader) {
				t.Fatal(err)
			}
		}
		return false
	})
	waitFor(t, "the job replicated to both over TLS", 10*time.Second, func() bool { return jobCount(leader) == 1 && jobCount(follower) == 1 })
}
