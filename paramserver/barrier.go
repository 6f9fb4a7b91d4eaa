package paramserver

import (
	"fmt"
	"math"
	"time"

	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/member"
	"github.com/maas-ml/maas/internal/wire"
	"github.com/maas-ml/maas/nn"
)

// rankStarted reports whether rank has pushed any chunk of the step.
func (js *jobState) rankStarted(rank int) bool {
	for _, h := range js.have[rank] {
		if h {
			return true
		}
	}
	return false
}

// armBarrierLocked starts the barrier timer of the current step.
func (s *Server) armBarrierLocked(js *jobState, extra time.Duration) {
	step, job := js.step, js.a.Job
	if js.barrier != nil {
		js.barrier.Stop()
	}
	timeout := s.cfg.BarrierTimeout
	if js.a.BarrierTimeout > 0 {
		timeout = js.a.BarrierTimeout
	}
	reconnects := s.nc.Stats().Reconnects
	if reconnects != s.reconnects {
		s.reconnects, s.reconnectedAt = reconnects, time.Now()
	}
	if extra == 0 && time.Since(s.reconnectedAt) < member.ReconnectGrace {
		// NATS came back moments ago, and this step began after it (a
		// faster rank's push armed it): the other ranks may still be
		// reconnecting, or fetching the θ they missed.
		extra = member.ReconnectGrace
	}
	timeout += extra
	js.barrier = time.AfterFunc(timeout, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		cur, ok := s.jobs[job]
		if !ok || cur != js || js.step != step {
			return
		}
		if !s.nc.IsConnected() || s.nc.Stats().Reconnects != reconnects {
			// NATS was away: the ranks could not push. The wait starts
			// over, with time for the workers to reconnect too; an outage
			// longer than this bound pauses the job at the coordinator
			// instead of dropping its workers.
			s.armBarrierLocked(js, member.ReconnectGrace)
			return
		}
		var missing []int
		for r, have := range js.have {
			for _, h := range have {
				if !h {
					missing = append(missing, r)
					break
				}
			}
		}
		js.stats.Missing++
		s.cfg.Logger.Warn("barrier timeout", zap.String("job", job), zap.Int64("step", step), zap.Ints("missing", missing))
		s.report(js, "missing", missing, fmt.Sprintf("step %d waited %v for ranks %v", step, timeout, missing))
	})
}

// completeLocked applies step js.step: the weighted sum in rank order, the
// finiteness check, the optimizer, and the publication of θ_{step+1}.
func (s *Server) completeLocked(js *jobState) {
	if js.barrier != nil {
		js.barrier.Stop()
	}
	if !js.firstPush.IsZero() {
		s.metrics.barrier.WithLabelValues(js.a.Job).Observe(time.Since(js.firstPush).Seconds())
	}
	s.metrics.steps.WithLabelValues(js.a.Job).Inc()
	total := 0
	for _, n := range js.ns {
		total += n
	}
	clear(js.sum)
	if total > 0 {
		for r, g := range js.grads { // rank order: deterministic
			for c, n := range js.wts[r] {
				w := float32(float64(n) / float64(total))
				if w == 0 {
					continue
				}
				lo, hi := js.chunks[c].Lo-js.rng.Lo, js.chunks[c].Hi-js.rng.Lo
				sum := js.sum[lo:hi]
				for i, v := range g[lo:hi] {
					sum[i] += w * v
				}
			}
		}
	}
	skipped := !finite(js.sum)
	js.keepPrev(skipped)
	if skipped {
		js.stats.BadSteps++
		s.cfg.Logger.Warn("non-finite gradient: step skipped", zap.String("job", js.a.Job), zap.Int64("step", js.step))
		s.report(js, "bad_step", nil, fmt.Sprintf("step %d: non-finite gradient, skipped", js.step))
		if js.stats.BadSteps > int64(js.a.MaxBadSteps) {
			js.failed = true
			s.report(js, "failed", nil, fmt.Sprintf("%d steps had non-finite gradients (max_bad_steps %d)", js.stats.BadSteps, js.a.MaxBadSteps))
		}
	} else {
		a := js.a
		if a.Optimizer.ClipNorm > 0 {
			nn.ClipGradNorm(js.sum, a.Optimizer.ClipNorm)
		}
		lr := a.Schedule.LR(a.Optimizer.LR, int(js.step), a.StepsPerEpoch, a.TotalSteps)
		js.opt.Step(js.theta, js.sum, lr)
		js.stats.Completed++
	}
	js.step++
	js.resetPartials()
	if err := s.publishDeltaLocked(js, skipped); err != nil {
		s.cfg.Logger.Error("publish parameters", zap.String("job", js.a.Job), zap.Error(err))
	}
	s.report(js, "step", nil, "")
	if every := int64(js.a.CheckpointEvery); every > 0 && js.step%every == 0 && js.step < int64(js.a.TotalSteps) {
		s.checkpointLocked(js)
	}
}

func finite(v []float32) bool {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return true
}

// publishLocked encodes θ_step chunk by chunk, whole (float32), keeps the
// messages for pulls and publishes each once on the job's parameter
// subject. With a.ParamEnc the members now hold θ_step exactly (shadow).
func (s *Server) publishLocked(js *jobState, skipped bool) error {
	if js.a.ParamEnc != "" {
		js.shadow = append(js.shadow[:0], js.theta...)
	}
	js.current = js.current[:0]
	for i := range js.chunks {
		b, err := js.paramChunk(i, skipped, js.theta)
		if err != nil {
			return err
		}
		js.current = append(js.current, b)
		s.metrics.bytes.WithLabelValues(js.a.Job, bytesPublished).Add(float64(len(b)))
		if err := s.nc.Publish(wire.ParamSubject(js.a.Job), b); err != nil {
			return err
		}
	}
	return nil
}

// publishDeltaLocked publishes θ_step after a step: with a.ParamEnc (and
// before the job's last θ) each chunk as the change from what the members
// hold (shadow) in that encoding, which they add to theirs as the server
// adds it to shadow, bit for bit; what a message leaves out stays in θ −
// shadow for the next. Pulls get shadow whole. Otherwise, whole.
func (s *Server) publishDeltaLocked(js *jobState, skipped bool) error {
	if js.a.ParamEnc == "" || len(js.shadow) != len(js.theta) || js.step == js.a.LastStep {
		return s.publishLocked(js, skipped)
	}
	js.current = js.current[:0]
	for i, c := range js.chunks {
		lo, hi := c.Lo-js.rng.Lo, c.Hi-js.rng.Lo
		d := js.sum[lo:hi] // the step's sum is applied: its buffer is free
		for j := range d {
			d[j] = js.theta[lo+j] - js.shadow[lo+j]
		}
		data := wire.AppendCompressed(nil, d, js.a.ParamEnc, 0)
		if err := wire.DecodeFloats(d, data, js.a.ParamEnc); err != nil {
			return err
		}
		sh := js.shadow[lo:hi]
		for j, v := range d {
			sh[j] += v
		}
		fan, err := wire.Encode(&wire.ParamChunk{V: wire.Version, Job: js.a.Job, Epoch: js.a.Epoch, Step: js.step,
			Server: js.a.Server, Chunk: i, Offset: c.Lo, Skipped: skipped, Data: data, Enc: js.a.ParamEnc, Delta: true})
		if err != nil {
			return err
		}
		whole, err := js.paramChunk(i, skipped, js.shadow)
		if err != nil {
			return err
		}
		js.current = append(js.current, whole)
		s.metrics.bytes.WithLabelValues(js.a.Job, bytesPublished).Add(float64(len(fan)))
		if err := s.nc.Publish(wire.ParamSubject(js.a.Job), fan); err != nil {
			return err
		}
	}
	return nil
}

// paramChunk encodes chunk i of θ_step whole, taken from v (the range's
// values).
func (js *jobState) paramChunk(i int, skipped bool, v []float32) ([]byte, error) {
	c := js.chunks[i]
	return wire.Encode(&wire.ParamChunk{V: wire.Version, Job: js.a.Job, Epoch: js.a.Epoch, Step: js.step,
		Server: js.a.Server, Chunk: i, Offset: c.Lo, Skipped: skipped,
		Data: wire.AppendFloats(nil, v[c.Lo-js.rng.Lo:c.Hi-js.rng.Lo])})
}
