package nn

import (
	"math"
	"strings"
)

// ScheduleSpec is a learning-rate schedule: the `schedule` section of a job
// spec. The rate of step s (counted from 0 over the whole run) is
//
//	warm-up: lr·(s+1)/warmup_steps          for s < warmup_steps
//	constant: lr
//	step:     lr·gamma^⌊epoch/step_size⌋
//	cosine:   min_lr + (lr − min_lr)·(1 + cos(π·(s−warmup)/(total−warmup)))/2
type ScheduleSpec struct {
	// Type is constant (the default), step or cosine.
	Type        string `yaml:"type,omitempty" json:"type,omitempty"`
	WarmupSteps int    `yaml:"warmup_steps,omitempty" json:"warmup_steps,omitempty"`
	// StepSize (epochs) and Gamma (default 0.1) apply to step.
	StepSize int     `yaml:"step_size,omitempty" json:"step_size,omitempty"`
	Gamma    float64 `yaml:"gamma,omitempty" json:"gamma,omitempty"`
	// MinLR is where cosine ends.
	MinLR float64 `yaml:"min_lr,omitempty" json:"min_lr,omitempty"`
}

// ScheduleTypes lists the schedules a spec may name.
var ScheduleTypes = []string{"constant", "step", "cosine"}

// Validate checks the spec; errors name the field under "schedule.".
func (s ScheduleSpec) Validate() error {
	switch s.Type {
	case "", "constant", "cosine":
	case "step":
		if s.StepSize <= 0 {
			return specErr("schedule.step_size", "step needs step_size ≥ 1 (epochs), got %d", s.StepSize)
		}
	default:
		return specErr("schedule.type", "unknown schedule %q; one of %s", s.Type, strings.Join(ScheduleTypes, ", "))
	}
	switch {
	case s.WarmupSteps < 0:
		return specErr("schedule.warmup_steps", "must not be negative, got %d", s.WarmupSteps)
	case s.Gamma < 0 || math.IsNaN(s.Gamma) || math.IsInf(s.Gamma, 0):
		return specErr("schedule.gamma", "must be a non-negative number, got %g", s.Gamma)
	case s.MinLR < 0 || math.IsNaN(s.MinLR) || math.IsInf(s.MinLR, 0):
		return specErr("schedule.min_lr", "must be a non-negative number, got %g", s.MinLR)
	}
	return nil
}

// LR returns the learning rate of step (0-based, over the whole run) for a
// base rate lr, with stepsPerEpoch steps an epoch and total steps in all.
func (s ScheduleSpec) LR(lr float64, step, stepsPerEpoch, total int) float64 {
	if step < s.WarmupSteps {
		return lr * float64(step+1) / float64(s.WarmupSteps)
	}
	switch s.Type {
	case "step":
		gamma := s.Gamma
		if gamma == 0 {
			gamma = 0.1
		}
		epoch := step / max(stepsPerEpoch, 1)
		return lr * math.Pow(gamma, float64(epoch/s.StepSize))
	case "cosine":
		span := total - s.WarmupSteps
		if span <= 0 {
			return lr
		}
		frac := min(float64(step-s.WarmupSteps)/float64(span), 1)
		return s.MinLR + (lr-s.MinLR)*(1+math.Cos(math.Pi*frac))/2
	}
	return lr
}
