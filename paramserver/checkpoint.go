package paramserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/natsconn"
	"github.com/maas-ml/maas/internal/wire"
	"github.com/maas-ml/maas/nn/safetensors"
)

// Checkpointer stores one range's checkpoint and returns where it is.
type Checkpointer interface {
	Save(ctx context.Context, job string, step int64, server int, data []byte) (bucket, object string, err error)
	// Load reads a stored checkpoint back.
	Load(ctx context.Context, bucket, object string) ([]byte, error)
}

// ObjectStoreCheckpointer keeps checkpoints in a JetStream Object Store
// bucket, one object per (job, step, range).
type ObjectStoreCheckpointer struct{ NC *nats.Conn }

var _ Checkpointer = ObjectStoreCheckpointer{}

// Save implements Checkpointer. Like Load, it retries until ctx ends:
// JetStream can be briefly without the bucket's stream leader, and a
// bucket just created on another NATS server of a cluster can be without
// interest here for a moment (a write then finds no responders).
func (c ObjectStoreCheckpointer) Save(ctx context.Context, job string, step int64, server int, data []byte) (string, string, error) {
	js, err := wire.JetStream(c.NC)
	if err != nil {
		return "", "", err
	}
	name := fmt.Sprintf("%s/%d/%d.safetensors", job, step, server)
	save := func() error {
		store, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: wire.CheckpointBucket, Description: "maas parameter-server checkpoints",
			Replicas: natsconn.Replicas(c.NC)})
		if err != nil {
			return fmt.Errorf("checkpoint bucket: %w", err)
		}
		if _, err := store.Put(ctx, jetstream.ObjectMeta{Name: name}, bytes.NewReader(data)); err != nil {
			return fmt.Errorf("store checkpoint %s: %w", name, err)
		}
		return nil
	}
	for {
		err := save()
		if err == nil {
			return wire.CheckpointBucket, name, nil
		}
		select {
		case <-ctx.Done():
			return "", "", err
		case <-time.After(checkpointRetry):
		}
	}
}

// checkpointRetry is the pause between tries of a checkpoint's save or
// load; notFoundGrace how long a load retries a checkpoint not found.
const (
	checkpointRetry = 250 * time.Millisecond
	notFoundGrace   = 3 * time.Second
)

// Load implements Checkpointer. JetStream can be briefly without a stream
// leader (a NATS server restarting in a rolling upgrade): a load that
// fails is retried until ctx ends, one that finds no bucket or object for
// notFoundGrace.
func (c ObjectStoreCheckpointer) Load(ctx context.Context, bucket, object string) ([]byte, error) {
	js, err := wire.JetStream(c.NC)
	if err != nil {
		return nil, err
	}
	load := func() ([]byte, error) {
		store, err := js.ObjectStore(ctx, bucket)
		if err != nil {
			return nil, fmt.Errorf("checkpoint bucket %s: %w", bucket, err)
		}
		b, err := store.GetBytes(ctx, object)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", object, err)
		}
		return b, nil
	}
	missingSince := time.Time{}
	for {
		b, err := load()
		if err == nil {
			return b, nil
		}
		if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrObjectNotFound) {
			// A committed checkpoint exists: a replica of the bucket just
			// back from a restart may not have it yet (a direct get it
			// answers). Missing for notFoundGrace, it is missing.
			if missingSince.IsZero() {
				missingSince = time.Now()
			} else if time.Since(missingSince) > notFoundGrace {
				return nil, err
			}
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(checkpointRetry):
		}
	}
}

// encodeCheckpoint serialises a range's θ and optimizer state (with its step
// count) as safetensors: tensors "theta" and "opt.<name>", metadata with
// the job, the step θ belongs to, the range and the optimizer's step count.
func encodeCheckpointLocked(js *jobState) ([]byte, error) {
	f := &safetensors.File{Tensors: map[string]safetensors.Tensor{}, Metadata: map[string]string{
		"job": js.a.Job, "step": strconv.FormatInt(js.step, 10), "server": strconv.Itoa(js.a.Server),
		"lo": strconv.Itoa(js.rng.Lo), "hi": strconv.Itoa(js.rng.Hi), "optimizer": js.a.Optimizer.Type,
	}}
	f.Tensors["theta"] = safetensors.F32([]int{len(js.theta)}, js.theta)
	state, optStep := js.opt.State()
	for _, name := range slices.Sorted(maps.Keys(state)) {
		f.Tensors["opt."+name] = safetensors.F32([]int{len(state[name])}, state[name])
	}
	f.Metadata["optimizer_step"] = strconv.FormatInt(optStep, 10)
	var buf bytes.Buffer
	if err := safetensors.Encode(&buf, f); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// checkpointLocked snapshots θ_step and the optimizer state now and stores
// them in the background, then reports the checkpoint to the coordinator.
func (s *Server) checkpointLocked(js *jobState) {
	if s.cfg.Checkpointer == nil {
		return
	}
	data, err := encodeCheckpointLocked(js)
	if err != nil {
		s.cfg.Logger.Error("encode checkpoint", zap.String("job", js.a.Job), zap.Error(err))
		return
	}
	job, step, server := js.a.Job, js.step, js.a.Server
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		bucket, object, err := s.cfg.Checkpointer.Save(ctx, job, step, server, data)
		if err != nil {
			s.cfg.Logger.Warn("checkpoint not stored", zap.String("job", job), zap.Int64("step", step), zap.Error(err))
			return
		}
		s.metrics.checkpoint.WithLabelValues(job).SetToCurrentTime()
		b, err := wire.Encode(&wire.Report{V: wire.Version, ID: s.cfg.ID, Job: job, Server: server, Kind: "checkpoint", Step: step,
			Bucket: bucket, Object: object})
		if err == nil {
			s.nc.Publish(wire.ReportSubject(s.cfg.ID), b)
		}
	}()
}

// DecodeCheckpoint reads a checkpoint written by a server: θ for its range,
// the optimizer state tensors, the step θ belongs to and the optimizer's
// step count.
func DecodeCheckpoint(data []byte) (theta []float32, opt map[string][]float32, step, optStep int64, err error) {
	f, err := safetensors.Decode(data)
	if err != nil {
		return nil, nil, 0, 0, err
	}
	t, ok := f.Tensors["theta"]
	if !ok {
		return nil, nil, 0, 0, fmt.Errorf("paramserver: checkpoint has no theta")
	}
	if theta, err = t.Float32(); err != nil {
		return nil, nil, 0, 0, err
	}
	opt = map[string][]float32{}
	for name, t := range f.Tensors {
		if n, ok := cutPrefix(name, "opt."); ok {
			if opt[n], err = t.Float32(); err != nil {
				return nil, nil, 0, 0, err
			}
		}
	}
	if step, err = strconv.ParseInt(f.Metadata["step"], 10, 64); err != nil {
		return nil, nil, 0, 0, fmt.Errorf("paramserver: checkpoint step: %w", err)
	}
	if optStep, err = strconv.ParseInt(f.Metadata["optimizer_step"], 10, 64); err != nil {
		return nil, nil, 0, 0, fmt.Errorf("paramserver: checkpoint optimizer step: %w", err)
	}
	return theta, opt, step, optStep, nil
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return "", false
}
