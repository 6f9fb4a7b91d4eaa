package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/member"
	"github.com/maas-ml/maas/internal/modeldir"
	"github.com/maas-ml/maas/internal/natsconn"
	"github.com/maas-ml/maas/internal/train"
	"github.com/maas-ml/maas/internal/wire"
	"github.com/maas-ml/maas/nn"
)

// Agent is the `maas worker` process: a cluster member that trains the
// jobs the coordinator assigns it, one at a time.
type Agent struct {
	nc  *nats.Conn
	cfg member.Config
	w   *Worker
	log *zap.Logger

	mu     sync.Mutex // guards job, epoch, cancel, data and life
	job    string
	epoch  uint64
	cancel context.CancelFunc
	data   map[string]*dataset.Dataset
	// life is Run's ctx: the datasets kept in data outlive a job's
	// epochs, and their shard fetches end with the member.
	life context.Context
	wg   sync.WaitGroup
}

// NewAgent returns a worker agent on nc.
func NewAgent(nc *nats.Conn, mc member.Config, wc Config) *Agent {
	mc.Kind = wire.KindWorker
	a := &Agent{nc: nc, cfg: mc, log: wc.Logger, data: map[string]*dataset.Dataset{}}
	if a.log == nil {
		a.log = zap.NewNop()
	}
	a.w = New(nc, wc)
	return a
}

// Run registers with the coordinator and works until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	a.life = ctx
	a.mu.Unlock()
	err := member.Run(ctx, a.nc, a.cfg, a)
	a.mu.Lock()
	if a.cancel != nil {
		a.cancel()
	}
	a.mu.Unlock()
	a.wg.Wait()
	return err
}

// Job returns the job being trained, or "".
func (a *Agent) Job() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.job
}

// Assign starts training a job, or stops it. The job runs until it ends,
// is stopped or replaced by a new epoch, or ctx ends.
func (a *Agent) Assign(ctx context.Context, as *wire.Assignment) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if as.Stop {
		if a.job == as.Job && a.cancel != nil {
			a.cancel()
		}
		return nil
	}
	if a.job == as.Job && a.epoch == as.Epoch {
		return nil // a re-delivery
	}
	if a.job != "" && a.job != as.Job {
		return fmt.Errorf("busy with job %s", a.job)
	}
	if a.cancel != nil { // a new epoch of the same job: restart from its step
		a.cancel()
	}
	spec, err := jobspec.Parse([]byte(as.Spec))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	a.job, a.epoch, a.cancel = as.Job, as.Epoch, cancel
	asg := Assignment{Job: as.Job, ID: a.cfg.ID, Spec: spec, Epoch: as.Epoch, Rank: as.Rank, Members: as.Members, Ranges: as.Ranges,
		MemberIDs: as.MemberIDs, Groups: as.Groups,
		ChunkFloats: as.ChunkFloats, FromStep: as.FromStep, TotalSteps: as.TotalSteps,
		StepTimeout: time.Duration(as.StepTimeoutMS) * time.Millisecond}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		err := a.train(ctx, asg)
		a.mu.Lock()
		if a.job == asg.Job && a.epoch == asg.Epoch {
			a.job, a.epoch, a.cancel = "", 0, nil
		}
		a.mu.Unlock()
		cancel()
		if errors.Is(err, ErrEpochChanged) {
			// The servers moved to a new membership epoch: the coordinator
			// sends this worker its part in it, if it has one.
			a.log.Info("membership epoch changed; waiting for the new assignment", zap.String("job", asg.Job), zap.Error(err))
			return
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			a.log.Warn("job failed", zap.String("job", asg.Job), zap.Error(err))
			a.done(&wire.Done{V: wire.Version, Job: asg.Job, ID: a.cfg.ID, Rank: asg.Rank, Err: err.Error()})
		}
	}()
	return nil
}

// sources returns the training data named by spec, the data its model is
// evaluated on at the end (an image set's test split, a text's held-out
// tail; nil when there is none), and the metadata the model carries (a
// text model's vocabulary). Image sets are read once (a pushed one: its
// manifest each time, its shards once).
func (a *Agent) sources(ctx context.Context, spec *jobspec.Spec) (data, eval train.Source, meta map[string]string, err error) {
	if spec.Dataset.Kind == "text" {
		return train.Open(spec)
	}
	d, err := a.images(ctx, spec, dataset.Train)
	if err != nil {
		return nil, nil, nil, err
	}
	data = train.Images{D: d, Norm: spec.Normalization()}
	if test, err := a.images(ctx, spec, dataset.Test); err == nil {
		eval = train.Images{D: test, Norm: spec.Normalization()}
	}
	return data, eval, map[string]string{}, nil
}

// images returns the split of the image set named by spec, read once.
func (a *Agent) images(ctx context.Context, spec *jobspec.Spec, split dataset.Split) (*dataset.Dataset, error) {
	if spec.Dataset.Name != "" {
		return a.pushedDataset(ctx, spec, split)
	}
	key := fmt.Sprintf("%s|%s|%d", spec.Dataset.Kind, spec.Dataset.Path, split)
	a.mu.Lock()
	d := a.data[key]
	a.mu.Unlock()
	if d != nil {
		return d, nil
	}
	d, err := dataset.Open(spec.Dataset.Kind, spec.Dataset.Path, split)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", spec.Dataset.Kind, err)
	}
	a.mu.Lock()
	a.data[key] = d
	a.mu.Unlock()
	return d, nil
}

func (a *Agent) train(ctx context.Context, asg Assignment) error {
	data, eval, meta, err := a.sources(ctx, asg.Spec)
	if err != nil {
		return err
	}
	w := *a.w
	if asg.StepTimeout > 0 { // the job's bound
		w.cfg.StepTimeout = asg.StepTimeout
	}
	user := w.cfg.OnStep
	w.cfg.OnStep = func(s StepInfo) {
		if user != nil {
			user(s)
		}
		b, _ := wire.Encode(&wire.Progress{V: wire.Version, ID: a.cfg.ID, Job: asg.Job, Rank: asg.Rank, Step: s.Step,
			LossSum: float64(s.Loss) * float64(s.N), Correct: s.Correct, N: s.N,
			ComputeUS: s.Compute.Microseconds(), PushUS: s.Push.Microseconds(), WaitUS: s.Wait.Microseconds()})
		a.nc.Publish(wire.ProgressSubject(a.cfg.ID), b)
	}
	if asg.Rank == 0 && eval != nil {
		// The model after each epoch on the held-out set, for the job's
		// history.
		w.cfg.OnEpochEnd = func(epoch int, step int64, m *nn.Model) {
			r, err := train.EvaluateSource(m, eval, 256)
			if err != nil {
				a.log.Warn("evaluate after an epoch", zap.String("job", asg.Job), zap.Int("epoch", epoch), zap.Error(err))
				return
			}
			b, _ := wire.Encode(&wire.Progress{V: wire.Version, ID: a.cfg.ID, Job: asg.Job, Rank: asg.Rank, Step: step,
				Eval: &wire.EvalReport{Epoch: int64(epoch), Step: step, Set: heldOut(asg.Spec), Loss: r.Loss, Accuracy: r.Accuracy}})
			a.nc.Publish(wire.ProgressSubject(a.cfg.ID), b)
		}
	}
	m, err := w.Run(ctx, asg, data)
	if err != nil {
		return err
	}
	if asg.Rank != 0 {
		return nil
	}
	return a.publish(ctx, asg, m, eval, meta)
}

// heldOut names the held-out set a job's model is evaluated on: an image
// set's test split, a text's validation tail.
func heldOut(spec *jobspec.Spec) string {
	if spec.Dataset.Kind == "text" {
		return "validation"
	}
	return "test"
}

// publish writes the trained model to the Object Store (rank 0) and
// reports it to the coordinator, with its metrics on eval (an image set's
// test split, a text's held-out tail) when there is one.
func (a *Agent) publish(ctx context.Context, asg Assignment, m *nn.Model, eval train.Source, meta map[string]string) error {
	metrics := map[string]float64{}
	if eval != nil {
		if r, err := train.EvaluateSource(m, eval, 256); err == nil {
			what := heldOut(asg.Spec)
			metrics[what+"_accuracy"], metrics[what+"_loss"] = r.Accuracy, r.Loss
		}
	}
	md := map[string]string{"job": asg.Job, "steps": fmt.Sprint(asg.TotalSteps)}
	for k, v := range meta {
		md[k] = v
	}
	weights, specYAML, err := modeldir.Encode(asg.Spec, m, md)
	if err != nil {
		return err
	}
	js, err := wire.JetStream(a.nc)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	prefix := asg.Job + "/"
	files := []string{modeldir.WeightsFile, modeldir.SpecFile}
	upload := func() error {
		store, err := js.CreateOrUpdateObjectStore(pctx, jetstream.ObjectStoreConfig{Bucket: wire.ModelBucket, Description: "maas published models",
			Replicas: natsconn.Replicas(a.nc)})
		if err != nil {
			return fmt.Errorf("model bucket: %w", err)
		}
		for i, b := range [][]byte{weights, specYAML} {
			if _, err := store.Put(pctx, jetstream.ObjectMeta{Name: prefix + files[i]}, bytes.NewReader(b)); err != nil {
				return fmt.Errorf("store %s: %w", files[i], err)
			}
		}
		return nil
	}
	// JetStream can be briefly without a stream leader (a NATS server
	// restarting in a rolling upgrade answers "no responders"): retry, the
	// same names replacing any part already stored, for up to a minute.
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		err := upload()
		if err == nil {
			break
		}
		a.log.Warn("model upload failed; retrying", zap.String("job", asg.Job), zap.Error(err))
		select {
		case <-pctx.Done():
			return err
		case <-time.After(wait):
		}
	}
	return a.done(&wire.Done{V: wire.Version, Job: asg.Job, ID: a.cfg.ID, Rank: 0, Bucket: wire.ModelBucket, Prefix: prefix,
		Files: files, Metrics: metrics})
}

// done reports the end of this member's part to the coordinator, retried
// until a leader acknowledges it.
func (a *Agent) done(d *wire.Done) error {
	b, err := wire.Encode(d)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		reply, err := a.nc.Request(wire.DoneSubject(d.ID), b, 2*time.Second)
		if err == nil {
			var ack wire.Ack
			if wire.Decode(reply.Data, &ack) == nil && ack.Accepted() {
				return nil
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("worker: no coordinator acknowledged the end of job %s", d.Job)
}
