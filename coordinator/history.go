package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/natsconn"
	"github.com/maas-ml/maas/internal/wire"
)

// A job's history (its events and training metrics) lives in JetStream's
// wire.HistoryStream, not in the leader's memory: the leader writes each
// record as it happens, in order, and any coordinator reads them back, so
// a leader change loses none (see internal/wire/history.go).

// HistoryMaxAge is how long the history stream keeps a record.
const HistoryMaxAge = 90 * 24 * time.Hour

// HistoryMaxBytes bounds the history stream; past it the oldest records
// go first.
const HistoryMaxBytes = 1 << 30

// historySettle is how long after a job ends a reader of its events
// still expects more (LogPage.Done waits for it): the leader's last
// records of it, written just after its state changed.
const historySettle = 3 * time.Second

// historyQueue is how many records wait for JetStream at most; past it a
// record is dropped (and logged) rather than hold up the leader.
const historyQueue = 8192

type historyRecord struct {
	subject string
	data    []byte
}

// historyStreamConfig is the stream's configuration.
func historyStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        wire.HistoryStream,
		Description: "maas job history: events and training metrics of every job",
		Subjects:    []string{wire.HistorySubjects},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      HistoryMaxAge,
		MaxBytes:    HistoryMaxBytes,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// runHistory writes ls's history records to JetStream in order, each
// acknowledged by the stream (retried for a while), until ls ends; then it
// writes what is queued, for a few seconds at most.
func (n *Node) runHistory(ls *leaderState) {
	js, err := wire.JetStream(n.nc)
	if err != nil {
		n.log.Error("history: JetStream", zap.Error(err))
		return
	}
	for ls.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(ls.ctx, 10*time.Second)
		_, err = js.CreateOrUpdateStream(ctx, historyStreamConfig(natsconn.Replicas(n.nc)))
		cancel()
		if err == nil {
			break
		}
		n.log.Warn("history: create the stream", zap.Error(err))
		sleepCtx(ls.ctx, time.Second)
	}
	put := func(ctx context.Context, r historyRecord) {
		for try := 0; ; try++ {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := js.Publish(pctx, r.subject, r.data)
			cancel()
			if err == nil {
				return
			}
			if try == 4 || ctx.Err() != nil {
				n.log.Warn("history: a record was not stored", zap.String("subject", r.subject), zap.Error(err))
				return
			}
			sleepCtx(ctx, 200*time.Millisecond)
		}
	}
	for {
		select {
		case r := <-ls.history:
			put(ls.ctx, r)
			ls.pending.Add(-1)
		case <-ls.ctx.Done():
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			for {
				select {
				case r := <-ls.history:
					put(ctx, r)
				default:
					return
				}
			}
		}
	}
}

// record queues a history record of job; it never blocks.
func (ls *leaderState) record(job, kind string, m wire.Message) {
	data, err := wire.Encode(m)
	if err != nil {
		return
	}
	ls.pending.Add(1)
	select {
	case ls.history <- historyRecord{subject: wire.HistorySubject(job, kind), data: data}:
	default:
		ls.pending.Add(-1)
		ls.dropped.Add(1)
	}
}

// flushHistory waits, up to d, until every history record this node has
// queued as leader is written.
func (n *Node) flushHistory(d time.Duration) {
	ls := n.leaderState()
	if ls == nil {
		return
	}
	for end := time.Now().Add(d); ls.pending.Load() > 0 && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
}

// errNoHistory: the history stream cannot be read.
var errNoHistory = errors.New("job history unavailable")

// readHistory calls fn with every record of job's kind after stream
// sequence since, in order, and their sequence numbers.
func (n *Node) readHistory(ctx context.Context, job, kind string, since uint64, fn func(seq uint64, data []byte) error) error {
	js, err := wire.JetStream(n.nc)
	if err != nil {
		return fmt.Errorf("%w: %v", errNoHistory, err)
	}
	stream, err := js.Stream(ctx, wire.HistoryStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil // nothing written yet
	}
	if err != nil {
		return fmt.Errorf("%w: %v", errNoHistory, err)
	}
	subj := wire.HistorySubject(job, kind)
	// How far to read: the subject's last record now.
	last, err := stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %v", errNoHistory, err)
	}
	if last.Sequence <= since {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if since > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, since+1
	}
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("%w: %v", errNoHistory, err)
	}
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return fmt.Errorf("%w: %v", errNoHistory, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("%w: %v", errNoHistory, err)
			}
			if err := fn(md.Sequence.Stream, m.Data()); err != nil {
				return err
			}
			if md.Sequence.Stream >= last.Sequence {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("%w: %v", errNoHistory, err)
		}
		if got == 0 {
			return fmt.Errorf("%w: the stream stopped before sequence %d", errNoHistory, last.Sequence)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// jobEvents reads job's events after stream sequence since.
func (n *Node) jobEvents(ctx context.Context, job string, since uint64) ([]api.LogEntry, error) {
	out := []api.LogEntry{}
	err := n.readHistory(ctx, job, wire.HistoryEvents, since, func(seq uint64, data []byte) error {
		var e wire.HistoryEvent
		if err := wire.Decode(data, &e); err != nil {
			return nil // a record of a newer version: skipped
		}
		out = append(out, api.LogEntry{Seq: int64(seq), Time: time.Unix(0, e.Time).UTC(), Message: e.Message})
		return nil
	})
	return out, err
}

// jobMetrics reads job's metric points and epochs.
func (n *Node) jobMetrics(ctx context.Context, job string) (api.JobMetrics, error) {
	out := api.JobMetrics{Points: []api.MetricPoint{}, Epochs: []api.EpochMetrics{}}
	err := n.readHistory(ctx, job, wire.HistoryPoints, 0, func(_ uint64, data []byte) error {
		var p wire.HistoryPoint
		if wire.Decode(data, &p) == nil {
			out.Points = append(out.Points, api.MetricPoint{Step: p.Step, Epoch: p.Epoch, Time: time.Unix(0, p.Time).UTC(),
				Loss: p.Loss, Accuracy: p.Accuracy, SamplesPerSec: p.SamplesPerSec, StepMS: p.StepMS,
				ComputeMS: p.ComputeMS, PushMS: p.PushMS, WaitMS: p.WaitMS, LR: p.LR})
		}
		return nil
	})
	if err != nil {
		return out, err
	}
	err = n.readHistory(ctx, job, wire.HistoryEpochs, 0, func(_ uint64, data []byte) error {
		var e wire.HistoryEpoch
		if wire.Decode(data, &e) == nil {
			out.Epochs = append(out.Epochs, api.EpochMetrics{Epoch: e.Epoch, Step: e.Step, Time: time.Unix(0, e.Time).UTC(),
				TrainLoss: e.TrainLoss, TrainAccuracy: e.TrainAccuracy, Samples: e.Samples})
		}
		return nil
	})
	if err != nil {
		return out, err
	}
	// Each epoch's evaluation joins its epoch (the last of an epoch
	// recorded twice, after a leader change).
	err = n.readHistory(ctx, job, wire.HistoryEvals, 0, func(_ uint64, data []byte) error {
		var e wire.HistoryEval
		if wire.Decode(data, &e) != nil {
			return nil
		}
		ev := &api.EvalMetrics{Set: e.Set, Loss: e.Loss, Accuracy: e.Accuracy}
		for i := len(out.Epochs) - 1; i >= 0; i-- {
			if out.Epochs[i].Epoch == e.Epoch {
				out.Epochs[i].Eval = ev
				return nil
			}
		}
		out.Epochs = append(out.Epochs, api.EpochMetrics{Epoch: e.Epoch, Step: e.Step, Time: time.Unix(0, e.Time).UTC(), Eval: ev})
		return nil
	})
	sort.SliceStable(out.Epochs, func(i, j int) bool { return out.Epochs[i].Epoch < out.Epochs[j].Epoch })
	return out, err
}
