package coordinator

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// ErrNotLeader is returned by calls only the leader can serve.
var ErrNotLeader = errors.New("coordinator: not the leader")

// Config configures a coordinator node.
type Config struct {
	// ID names the node in the Raft cluster.
	ID string
	// RaftAddr is the address the Raft TCP transport binds and advertises.
	RaftAddr string
	// HTTPAddr is where the API listens (and what other nodes redirect to).
	HTTPAddr string
	// DataDir holds the Raft log, stable store and snapshots.
	DataDir string
	// Bootstrap makes this node a new single-node cluster when it has no
	// state yet; other nodes join an existing one.
	Bootstrap bool
	// HeartbeatTimeout and ElectionTimeout tune Raft (1 s each by default:
	// hashicorp/raft's defaults, which elect a new leader within ~2–3 s).
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	// MemberTimeout declares a member dead after this long without a
	// heartbeat (default 3 s).
	MemberTimeout time.Duration
	// BarrierTimeout is the parameter servers' per-step barrier bound.
	BarrierTimeout time.Duration
	// ApplyTimeout bounds one Raft apply.
	ApplyTimeout time.Duration
	Logger       *zap.Logger
	// RaftLogOutput receives hashicorp/raft's own log (default: discarded).
	RaftLogOutput io.Writer
	// TLS, when set, makes the API serve HTTPS with it: its certificate
	// and, with ClientCAs and ClientAuth set, mutual TLS (see
	// cluster.ServerTLS). Nil serves plain HTTP.
	TLS *tls.Config
	// RaftTLS, when set, carries Raft between coordinators over mutual
	// TLS (see cluster.PeerTLS: the host's certificate, the cluster's CA
	// both ways); every coordinator of a cluster must use it or none.
	// RaftAddr must then name the host by an address its certificate
	// holds. Nil is plain TCP.
	RaftTLS *tls.Config
	// Tokens, when set, checks the bearer token of every API call against
	// the role its route needs (the routes table in http.go). Nil leaves
	// the API open.
	Tokens TokenChecker
	// DataRoots, when set, are the only directories (absolute paths) a
	// job's dataset.path may lie in: a spec naming another is refused
	// (see dataroots.go). Nil allows any path, empty (not nil) none.
	DataRoots []string
	// Registerer gets the node's metrics (nil: not exported).
	Registerer prometheus.Registerer
	// ServeURL is the serving endpoint's base URL (http://host:port), for
	// the dashboard's models page, which reaches it through this node.
	// Empty: the page has no "try it".
	ServeURL string
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{HeartbeatTimeout: time.Second, ElectionTimeout: time.Second, MemberTimeout: 3 * time.Second,
		BarrierTimeout: 30 * time.Second, ApplyTimeout: 5 * time.Second, Logger: zap.NewNop()}
}

// Validate reports a config that cannot start.
func (c *Config) Validate() error {
	switch {
	case c.ID == "":
		return errors.New("coordinator: a node id is required")
	case c.RaftAddr == "":
		return errors.New("coordinator: a raft address is required")
	case c.HTTPAddr == "":
		return errors.New("coordinator: an HTTP address is required")
	case c.TLS != nil && len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil:
		return errors.New("coordinator: the API's TLS config has no certificate")
	}
	if err := validateDataRoots(c.DataRoots); err != nil {
		return err
	}
	d := DefaultConfig()
	if c.HeartbeatTimeout <= 0 {
		c.HeartbeatTimeout = d.HeartbeatTimeout
	}
	if c.ElectionTimeout <= 0 {
		c.ElectionTimeout = d.ElectionTimeout
	}
	if c.MemberTimeout <= 0 {
		c.MemberTimeout = d.MemberTimeout
	}
	if c.BarrierTimeout <= 0 {
		c.BarrierTimeout = d.BarrierTimeout
	}
	if c.ApplyTimeout <= 0 {
		c.ApplyTimeout = d.ApplyTimeout
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.RaftLogOutput == nil {
		c.RaftLogOutput = io.Discard
	}
	return nil
}

// Node is one coordinator: a Raft member, the API, and — while it leads —
// the scheduler and the control plane.
type Node struct {
	cfg  Config
	fsm  *FSM
	raft *raft.Raft
	nc   *nats.Conn
	log  *zap.Logger
	// metrics are the node's counters.
	metrics *metrics

	httpSrv *http.Server
	httpLn  net.Listener
	// peer is the HTTP transport to other coordinators and the serving
	// endpoint (peerTransport).
	peerOnce sync.Once
	peer     *http.Transport

	mu     sync.Mutex // guards leader
	leader *leaderState

	closers []io.Closer
	done    chan struct{}
	wg      sync.WaitGroup
}

// Open starts a node with its Raft state on disk under cfg.DataDir
// (raft-boltdb for the log and stable store, file snapshots) and the Raft
// TCP transport on cfg.RaftAddr (over mutual TLS with cfg.RaftTLS).
func Open(cfg Config, nc *nats.Conn) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.DataDir == "" {
		return nil, errors.New("coordinator: a data directory is required")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("coordinator: data directory: %w", err)
	}
	store, err := raftboltdb.NewBoltStore(filepath.Join(cfg.DataDir, "raft.db"))
	if err != nil {
		return nil, fmt.Errorf("coordinator: raft store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStore(cfg.DataDir, 2, cfg.RaftLogOutput)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("coordinator: snapshot store: %w", err)
	}
	// The transport advertises the address it listens on (cfg.RaftAddr
	// must name a host other nodes can reach, not 0.0.0.0).
	var trans *raft.NetworkTransport
	if cfg.RaftTLS != nil {
		var stream *tlsStream
		if stream, err = listenRaftTLS(cfg.RaftAddr, cfg.RaftTLS); err == nil {
			trans = raft.NewNetworkTransport(stream, 3, 10*time.Second, cfg.RaftLogOutput)
		}
	} else {
		trans, err = raft.NewTCPTransport(cfg.RaftAddr, nil, 3, 10*time.Second, cfg.RaftLogOutput)
	}
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("coordinator: raft transport on %s: %w", cfg.RaftAddr, err)
	}
	n, err := New(cfg, nc, NewFSM(), store, store, snaps, trans)
	if err != nil {
		trans.Close()
		store.Close()
		return nil, err
	}
	n.closers = append(n.closers, trans, store)
	return n, nil
}

// New starts a node from its parts: the FSM, the Raft log and stable
// stores, the snapshot store and the transport (in-memory ones in tests).
func New(cfg Config, nc *nats.Conn, fsm *FSM, logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore, trans raft.Transport) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.HeartbeatTimeout / 2
	rc.CommitTimeout = 20 * time.Millisecond
	rc.SnapshotThreshold = 1024
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Output: cfg.RaftLogOutput, Level: hclog.Warn})
	if cfg.Bootstrap {
		has, err := raft.HasExistingState(logs, stable, snaps)
		if err != nil {
			return nil, err
		}
		if !has {
			conf := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: trans.LocalAddr()}}}
			if err := raft.BootstrapCluster(rc, logs, stable, snaps, trans, conf); err != nil {
				return nil, fmt.Errorf("coordinator: bootstrap: %w", err)
			}
		}
	}
	r, err := raft.NewRaft(rc, fsm, logs, stable, snaps, trans)
	if err != nil {
		return nil, fmt.Errorf("coordinator: raft: %w", err)
	}
	n := &Node{cfg: cfg, fsm: fsm, raft: r, nc: nc, log: cfg.Logger, metrics: newMetrics(cfg.Registerer), done: make(chan struct{})}
	if err := n.startHTTP(); err != nil {
		r.Shutdown().Error()
		return nil, err
	}
	n.wg.Add(1)
	go n.watchLeadership()
	return n, nil
}

// FSM returns the node's state machine (read it with FSM().Read).
func (n *Node) FSM() *FSM { return n.fsm }

// Raft returns the node's Raft instance.
func (n *Node) Raft() *raft.Raft { return n.raft }

// IsLeader reports whether this node leads.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// HTTPAddr is the address the API listens on.
func (n *Node) HTTPAddr() string { return n.httpLn.Addr().String() }

// Close stops the node: leadership duties, the API and Raft.
func (n *Node) Close() error {
	select {
	case <-n.done:
		return nil
	default:
	}
	close(n.done)
	n.stopLeading()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	n.httpSrv.Shutdown(ctx)
	cancel()
	err := n.raft.Shutdown().Error()
	n.wg.Wait()
	for _, c := range n.closers {
		c.Close()
	}
	return err
}

// watchLeadership starts the leader's duties when this node gains the lead
// and stops them when it loses it.
// LeaderCh may drop a signal when two come quickly, so the raft state is
// also polled.
func (n *Node) watchLeadership() {
	defer n.wg.Done()
	ch := n.raft.LeaderCh()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-ch:
		case <-tick.C:
		}
		if n.raft.State() == raft.Leader {
			n.startLeading()
		} else {
			n.stopLeading()
		}
	}
}

func newRequestID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Propose applies a command through Raft on the leader and returns its
// result, waiting at most Config.ApplyTimeout or until ctx ends. The
// command keeps its request id across retries, so a retry after a lost
// leadership, or after ctx ended while the entry was in flight, is applied
// once.
func (n *Node) Propose(ctx context.Context, c Command) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if c.RequestID == "" {
		c.RequestID = newRequestID()
	}
	if c.Time.IsZero() {
		c.Time = time.Now().UTC()
	}
	data, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	if n.raft.State() != raft.Leader {
		return "", ErrNotLeader
	}
	f := n.raft.Apply(data, n.applyTimeout(ctx))
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return "", fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("coordinator: raft apply: %w (%v)", ctx.Err(), err)
		}
		return "", fmt.Errorf("coordinator: raft apply: %w", err)
	}
	res, _ := f.Response().(ApplyResult)
	return res.Value, res.Err
}

// applyTimeout is how long a Raft call may wait: Config.ApplyTimeout, or
// less when ctx ends sooner (Raft's futures take a timeout, not a context).
func (n *Node) applyTimeout(ctx context.Context) time.Duration {
	d := n.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		d = max(min(d, time.Until(dl)), time.Millisecond)
	}
	return d
}

// Join adds a coordinator to the Raft cluster (leader only) and records its
// HTTP address.
func (n *Node) Join(ctx context.Context, id, raftAddr, httpAddr string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if n.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	if err := n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, n.applyTimeout(ctx)).Error(); err != nil {
		return fmt.Errorf("coordinator: add voter %s: %w", id, err)
	}
	_, err := n.Propose(ctx, Command{Type: CmdRegisterNode, RequestID: "node-" + id + "-" + httpAddr, Node: &NodeInfo{ID: id, HTTPAddr: httpAddr}})
	return err
}

// Remove takes coordinator id out of the Raft configuration: its votes
// no longer count towards a quorum. Removing the leader itself makes it
// step down once the change commits. An id not in the configuration is
// ErrNotFound.
func (n *Node) Remove(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if n.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	if !slices.ContainsFunc(f.Configuration().Servers, func(s raft.Server) bool { return s.ID == raft.ServerID(id) }) {
		return fmt.Errorf("%w: coordinator %s is not in the Raft configuration", ErrNotFound, id)
	}
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, n.applyTimeout(ctx)).Error(); err != nil {
		return fmt.Errorf("coordinator: remove %s: %w", id, err)
	}
	n.log.Info("coordinator removed from the Raft configuration", zap.String("id", id))
	return nil
}

// leaderHTTP returns the leader's HTTP address, or "" when there is none.
func (n *Node) leaderHTTP() string {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return ""
	}
	var addr string
	n.fsm.Read(func(st *State) { addr = st.Nodes[string(id)].HTTPAddr })
	return addr
}

// WaitForLeader waits until the cluster has a leader whose API is up (this
// node or another), or ctx ends.
func (n *Node) WaitForLeader(ctx context.Context) error {
	for {
		if n.IsLeader() && n.leaderState() != nil || !n.IsLeader() && n.leaderHTTP() != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("coordinator %s: no leader: %w", n.cfg.ID, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
