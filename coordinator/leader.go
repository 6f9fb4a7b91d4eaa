package coordinator

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/wire"
)

// leaderState is what the leader keeps in memory: heartbeats and step
// progress. None of it is in the Raft log; a new leader rebuilds it from
// the next heartbeats and reports. Job events and training metrics go to
// the history stream as they happen (history.go).
type leaderState struct {
	ctx    context.Context
	cancel context.CancelFunc
	subs   []*nats.Subscription
	wg     sync.WaitGroup

	mu         sync.Mutex // guards the fields below
	lastSeen   map[string]time.Time
	progress   map[string]*jobProgress
	assigned   map[string]uint64    // job → membership epoch whose assignments were delivered
	assignedAt map[string]time.Time // job → when they were
	// serving is, per parameter server, the job its heartbeats name and
	// since when they have named it.
	serving map[string]serving
	// boots is each member's process incarnation, from its heartbeats;
	// reborn marks the members whose incarnation changed (the process
	// restarted under its id) until the schedule loop has acted on it.
	boots  map[string]string
	reborn map[string]bool
	// registered is, per member, the incarnation it registered as with
	// this leader: a heartbeat of another one is a late one of a process
	// the registration replaced (a process registers before it
	// heartbeats, on the same connection), and says nothing of the member
	// now.
	registered map[string]string
	// standbyWait: since when a job that lost a server waits for a standby.
	standbyWait map[string]time.Time
	// losses: job → worker → how often it was lost from the job.
	losses map[string]map[string]*workerLosses
	// ckpts collects stored checkpoint ranges: job → step → server → object.
	ckpts map[string]map[int64]map[int]string

	// history queues the job history records runHistory writes;
	// dropped counts those the queue had no room for.
	history chan historyRecord
	dropped atomic.Int64
	pending atomic.Int64 // queued or being written
}

// jobProgress accumulates the workers' step reports of a job.
type jobProgress struct {
	step    int64 // the latest step every rank reported
	perStep map[int64]int
	epoch   int64
	// The reports' sums: the loss, correct and samples over the epoch,
	// the phases over the job.
	reportSums
	// The last finished epoch's loss sum, right and samples.
	prevLossSum        float64
	prevCorrect, prevN int
	samples            int
	first              time.Time
	last               time.Time

	// Since the last metric point (history): its step and time, and the
	// reports' sums since.
	point      pointSums
	every      int64                    // steps between points (wire.HistoryEvery)
	lr         func(step int64) float64 // the job's learning rate at a step
	epochSteps int64                    // the job's steps an epoch
}

// pointSums are the step reports summed since a job's last metric point.
type pointSums struct {
	step int64
	at   time.Time
	reportSums
}

// reportSums are sums over the workers' step reports: loss × samples,
// samples classified right, samples, and the phases in microseconds.
type reportSums struct {
	lossSum                   float64
	correct, n                int
	computeUS, pushUS, waitUS int64
	reports                   int64
}

func (s *reportSums) add(p *wire.Progress) {
	s.lossSum += p.LossSum
	s.correct += p.Correct
	s.n += p.N
	s.computeUS += p.ComputeUS
	s.pushUS += p.PushUS
	s.waitUS += p.WaitUS
	s.reports++
}

func (n *Node) startLeading() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.leader != nil || n.nc == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	ls := &leaderState{ctx: ctx, cancel: cancel, lastSeen: map[string]time.Time{}, progress: map[string]*jobProgress{},
		history: make(chan historyRecord, historyQueue), assigned: map[string]uint64{}, assignedAt: map[string]time.Time{}, standbyWait: map[string]time.Time{}, serving: map[string]serving{}, boots: map[string]string{}, reborn: map[string]bool{}, registered: map[string]string{}, losses: map[string]map[string]*workerLosses{}, ckpts: map[string]map[int64]map[int]string{}}
	n.leader = ls
	n.log.Info("leading", zap.String("node", n.cfg.ID))
	ls.wg.Add(1)
	go func() {
		defer ls.wg.Done()
		n.runHistory(ls)
	}()
	// Every member sends on subjects ending in its own id (see
	// wire.HeartbeatSubject): "*" hears them all.
	for subj, h := range map[string]nats.MsgHandler{
		wire.RegisterSubject("*"):  n.onRegister,
		wire.HeartbeatSubject("*"): n.onHeartbeat,
		wire.ProgressSubject("*"):  n.onProgress,
		wire.ReportSubject("*"):    n.onReport,
		wire.DoneSubject("*"):      n.onDone,
	} {
		sub, err := n.nc.Subscribe(subj, h)
		if err != nil {
			n.log.Error("subscribe", zap.String("subject", subj), zap.Error(err))
			continue
		}
		ls.subs = append(ls.subs, sub)
	}
	ls.wg.Add(1)
	go func() {
		defer ls.wg.Done()
		// Record this node's HTTP address so followers can redirect to it.
		for ctx.Err() == nil {
			if _, err := n.Propose(ctx, Command{Type: CmdRegisterNode, RequestID: "node-" + n.cfg.ID + "-" + n.HTTPAddr(),
				Node: &NodeInfo{ID: n.cfg.ID, HTTPAddr: n.HTTPAddr()}}); err == nil {
				break
			}
			sleepCtx(ctx, 200*time.Millisecond)
		}
		n.schedule(ls)
	}()
}

func (n *Node) stopLeading() {
	n.mu.Lock()
	ls := n.leader
	n.leader = nil
	n.mu.Unlock()
	if ls == nil {
		return
	}
	ls.cancel()
	for _, s := range ls.subs {
		s.Unsubscribe()
	}
	ls.wg.Wait()
	n.log.Info("stopped leading", zap.String("node", n.cfg.ID))
}

func (n *Node) leaderState() *leaderState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leader
}

// leaderCtx is the context of this node's leadership, which ends when it
// stops leading; a node that does not lead gets one that has ended.
func (n *Node) leaderCtx() context.Context {
	if ls := n.leaderState(); ls != nil {
		return ls.ctx
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// logf records an event of a job in its history.
func (ls *leaderState) logf(job, format string, args ...any) {
	ls.record(job, wire.HistoryEvents, &wire.HistoryEvent{V: wire.Version, Time: time.Now().UnixNano(), Message: fmt.Sprintf(format, args...)})
}
