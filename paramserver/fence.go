package paramserver

import (
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Fence stops job's range from completing steps of membership epoch while
// the coordinator replaces that epoch, and returns the step whose θ the
// range holds: with every range fenced, the lowest such step is where the
// next epoch can start (see Reconfigure). Pushes are refused meanwhile as
// of a changed epoch, so their workers wait for their next assignment. The
// fence lifts after hold if no new epoch comes (the coordinator lost its
// leadership, say); fencing again extends it.
func (s *Server) Fence(job string, epoch uint64, hold time.Duration) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	js, ok := s.jobs[job]
	switch {
	case !ok:
		return 0, fmt.Errorf("%w: %s", ErrUnknownJob, job)
	case js.a.Epoch != epoch:
		return 0, fmt.Errorf("%w: fence of membership epoch %d, the range is in %d", ErrAssignment, epoch, js.a.Epoch)
	}
	if js.barrier != nil {
		js.barrier.Stop()
	}
	if js.fence != nil {
		js.fence.Stop()
	}
	js.fenced = true
	js.fence = time.AfterFunc(hold, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.jobs[job] != js || !js.fenced || js.a.Epoch != epoch {
			return
		}
		js.fenced = false
		s.cfg.Logger.Warn("fence lifted: no new membership epoch came", zap.String("job", job), zap.Uint64("epoch", epoch))
		if js.count > 0 {
			s.armBarrierLocked(js, 0)
		}
	})
	s.cfg.Logger.Info("fenced for a membership change", zap.String("job", job), zap.Uint64("epoch", epoch), zap.Int64("step", js.step))
	return js.step, nil
}

// unfenceLocked drops a fence (a new epoch came, or the job ends).
func (js *jobState) unfenceLocked() {
	if js.fence != nil {
		js.fence.Stop()
	}
	js.fenced = false
}

// keepPrev copies θ_step and the optimizer state before the step is
// applied.
func (js *jobState) keepPrev(skipped bool) {
	p := &js.prev
	p.theta = append(p.theta[:0], js.theta...)
	state, step := js.opt.State()
	if p.opt == nil {
		p.opt = map[string][]float32{}
	}
	for name, v := range state {
		p.opt[name] = append(p.opt[name][:0], v...)
	}
	p.optStep, p.bad, p.ok = step, skipped, true
}

// undoLocked restores the state kept before the last step.
func (js *jobState) undoLocked() {
	p := &js.prev
	copy(js.theta, p.theta)
	state, _ := js.opt.State()
	for name, v := range state {
		if old, ok := p.opt[name]; ok {
			copy(v, old)
		} else {
			clear(v)
		}
	}
	js.opt.SetStep(p.optStep)
	if p.bad {
		js.stats.BadSteps--
	} else {
		js.stats.Completed--
	}
	js.step--
	p.ok = false
}
