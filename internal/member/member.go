// Package member is what workers and parameter servers share as cluster
// members: registering with the coordinator leader (retried until one
// answers), heartbeats every second, and taking assignments on the
// member's own subject.
package member

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/wire"
)

// Config describes a member.
type Config struct {
	ID      string
	Kind    string // wire.KindWorker or wire.KindParamServer
	Host    string
	Threads int
	// Device is what the member computes on, shown by `maas cluster
	// status` (e.g. "cpu (go+avx2, 8 threads)", "NVIDIA H200 (cuda:0)").
	Device string
	// HeartbeatEvery is the heartbeat period (default 1 s).
	HeartbeatEvery time.Duration
	Logger         *zap.Logger
}

// DefaultID names a member after its kind, host and process id.
func DefaultID(kind string) string {
	host, _ := os.Hostname()
	id := fmt.Sprintf("%s-%s-%d", kind, host, os.Getpid())
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, id)
}

// ErrNotHeld is returned by a Handler's Assign for an assignment that
// goes on with a job it holds nothing of; the coordinator is told so
// (wire.AckNotHeld), not refused.
var ErrNotHeld = errors.New("member: holds nothing of the job")

// Handler is what a member does with assignments.
type Handler interface {
	// Assign starts (or stops, when a.Stop) work on a job; an error is sent
	// back to the coordinator as a refusal. ctx ends with the member (Run's
	// ctx): work started from it stops then.
	Assign(ctx context.Context, a *wire.Assignment) error
	// Job is the job the member works on now, or "".
	Job() string
}

// Fencer is a Handler that can fence a job for a membership change
// (parameter servers: see paramserver.Server.Fence).
type Fencer interface {
	Fence(job string, epoch uint64, hold time.Duration) (int64, error)
}

// Run registers the member, then heartbeats and takes assignments until
// ctx ends. It fails with ErrCredential when NATS refuses the member its
// own subjects (its assignments, registration or heartbeats): the
// process's credential is another member's.
func Run(ctx context.Context, nc *nats.Conn, cfg Config, h Handler) error {
	if !wire.ValidJobID(cfg.ID) {
		return fmt.Errorf("member: id %q: use letters, digits, '-' and '_'", cfg.ID)
	}
	if cfg.HeartbeatEvery <= 0 {
		cfg.HeartbeatEvery = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	boot := fmt.Sprintf("%016x", rand.Uint64())
	sub, err := nc.Subscribe(wire.MemberSubject(cfg.ID), func(m *nats.Msg) {
		var a wire.Assignment
		ack := wire.Ack{V: wire.Version, Code: wire.AckOK}
		err := wire.Decode(m.Data, &a)
		switch f, ok := h.(Fencer); {
		case err != nil:
		case a.Fence && !ok:
			err = fmt.Errorf("member %s (%s) holds no parameters to fence", cfg.ID, cfg.Kind)
		case a.Fence:
			ack.Step, err = f.Fence(a.Job, a.Epoch, time.Duration(a.FenceMS)*time.Millisecond)
		case a.Boot != "" && a.Boot != boot && !a.Stop:
			err = fmt.Errorf("%w: the assignment of %s's epoch %d is for incarnation %s of %s, this is %s", ErrNotHeld, a.Job, a.Epoch, a.Boot, cfg.ID, boot)
		default:
			err = h.Assign(ctx, &a)
		}
		switch {
		case errors.Is(err, ErrNotHeld):
			ack.Code, ack.Reason = wire.AckNotHeld, err.Error()
		case err != nil:
			ack.Code, ack.Reason = wire.AckRejected, err.Error()
		}
		if m.Reply != "" {
			if b, err := wire.Encode(&ack); err == nil {
				m.Respond(b)
			}
		}
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	own := []string{op("Subscription", sub.Subject), op("Publish", wire.RegisterSubject(cfg.ID)), op("Publish", wire.HeartbeatSubject(cfg.ID))}
	if err := refusal(nc, true, own...); err != nil {
		return credentialErr(cfg.ID, err)
	}
	reg, _ := wire.Encode(&wire.Register{V: wire.Version, ID: cfg.ID, Kind: cfg.Kind, Host: cfg.Host, Threads: cfg.Threads, Device: cfg.Device, Boot: boot})
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		reply, err := nc.RequestWithContext(rctx, wire.RegisterSubject(cfg.ID), reg)
		cancel()
		// A refused registration is dropped by the server: the request
		// times out, and the violation came meanwhile.
		if err := refusal(nc, false, own...); err != nil {
			return credentialErr(cfg.ID, err)
		}
		if err == nil {
			var ack wire.Ack
			if err := wire.Decode(reply.Data, &ack); err == nil && ack.Accepted() {
				break
			} else if err == nil {
				return fmt.Errorf("member: registration refused: %s", ack.Reason)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		cfg.Logger.Debug("waiting for a coordinator leader", zap.Error(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	cfg.Logger.Info("registered", zap.String("id", cfg.ID), zap.String("kind", cfg.Kind))
	tick := time.NewTicker(cfg.HeartbeatEvery)
	defer tick.Stop()
	for first := true; ; first = false {
		job := h.Job()
		beat := wire.Heartbeat{V: wire.Version, ID: cfg.ID, Kind: cfg.Kind, Job: job, Boot: boot}
		hb, _ := wire.Encode(&beat)
		nc.Publish(wire.HeartbeatSubject(cfg.ID), hb)
		if first {
			if err := refusal(nc, true, own[2]); err != nil {
				return credentialErr(cfg.ID, err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
