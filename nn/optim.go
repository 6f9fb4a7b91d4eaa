package nn

import (
	"fmt"
	"math"
	"strings"

	"github.com/maas-ml/maas/tensor"
)

// OptimizerSpec configures an optimizer: the `optimizer` section of a job
// spec. Zero values take PyTorch's defaults.
type OptimizerSpec struct {
	// Type is sgd, adam or adamw.
	Type string  `yaml:"type" json:"type"`
	LR   float64 `yaml:"lr" json:"lr"`
	// Momentum, Dampening and Nesterov apply to sgd.
	Momentum  float64 `yaml:"momentum,omitempty" json:"momentum,omitempty"`
	Dampening float64 `yaml:"dampening,omitempty" json:"dampening,omitempty"`
	Nesterov  bool    `yaml:"nesterov,omitempty" json:"nesterov,omitempty"`
	// WeightDecay is L2 added to the gradient (sgd, adam) or decoupled
	// decay (adamw; default 0.01 there, as in PyTorch).
	WeightDecay *float64 `yaml:"weight_decay,omitempty" json:"weight_decay,omitempty"`
	// Betas and Eps apply to adam and adamw (defaults 0.9, 0.999 and 1e-8).
	Betas []float64 `yaml:"betas,omitempty" json:"betas,omitempty"`
	Eps   float64   `yaml:"eps,omitempty" json:"eps,omitempty"`
	// ClipNorm, when positive, rescales the gradient so its global L2 norm is
	// at most ClipNorm before each step.
	ClipNorm float64 `yaml:"clip_norm,omitempty" json:"clip_norm,omitempty"`
}

// OptimizerTypes lists the optimizers a spec may name.
var OptimizerTypes = []string{"sgd", "adam", "adamw"}

// Validate checks the spec; errors name the field under "optimizer.".
func (s OptimizerSpec) Validate() error {
	switch s.Type {
	case "sgd", "adam", "adamw":
	case "":
		return specErr("optimizer.type", "missing; one of %s", strings.Join(OptimizerTypes, ", "))
	default:
		return specErr("optimizer.type", "unknown optimizer %q; one of %s", s.Type, strings.Join(OptimizerTypes, ", "))
	}
	bad := func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) || v < 0 }
	switch {
	case bad(s.LR) || s.LR == 0:
		return specErr("optimizer.lr", "must be a positive number, got %g", s.LR)
	case bad(s.Momentum):
		return specErr("optimizer.momentum", "must not be negative, got %g", s.Momentum)
	case bad(s.Dampening) || s.Dampening > 1:
		return specErr("optimizer.dampening", "must be in [0, 1], got %g", s.Dampening)
	case s.Nesterov && (s.Momentum == 0 || s.Dampening != 0):
		return specErr("optimizer.nesterov", "needs momentum > 0 and dampening 0")
	case s.WeightDecay != nil && bad(*s.WeightDecay):
		return specErr("optimizer.weight_decay", "must not be negative, got %g", *s.WeightDecay)
	case bad(s.Eps):
		return specErr("optimizer.eps", "must not be negative, got %g", s.Eps)
	case bad(s.ClipNorm):
		return specErr("optimizer.clip_norm", "must not be negative, got %g", s.ClipNorm)
	}
	if s.Type == "sgd" && (len(s.Betas) > 0 || s.Eps != 0) {
		return specErr("optimizer", "betas and eps apply to adam and adamw, not sgd")
	}
	if s.Type != "sgd" && (s.Momentum != 0 || s.Nesterov || s.Dampening != 0) {
		return specErr("optimizer", "momentum, dampening and nesterov apply to sgd, not %s", s.Type)
	}
	if len(s.Betas) != 0 {
		if len(s.Betas) != 2 {
			return specErr("optimizer.betas", "needs two values, got %d", len(s.Betas))
		}
		for _, b := range s.Betas {
			if bad(b) || b >= 1 {
				return specErr("optimizer.betas", "values must be in [0, 1), got %v", s.Betas)
			}
		}
	}
	return nil
}

// Optimizer updates a flat parameter vector from its gradient. It owns its
// state (momentum buffers, Adam moments and step count) for a vector of
// fixed length, so a parameter server keeps one per key range.
type Optimizer interface {
	// Step applies one update to params from grads at learning rate lr.
	Step(params, grads []float32, lr float64)
	// State returns the optimizer's state tensors (views, not copies) and
	// its step count, for checkpoints.
	State() (tensors map[string][]float32, step int64)
	// SetStep restores the step count (tensors are restored by copying into
	// the State views).
	SetStep(step int64)
}

// NewOptimizer returns the optimizer spec asks for, for n parameters.
func NewOptimizer(spec OptimizerSpec, n int) (Optimizer, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	wd := 0.0
	if spec.WeightDecay != nil {
		wd = *spec.WeightDecay
	} else if spec.Type == "adamw" {
		wd = 0.01
	}
	switch spec.Type {
	case "sgd":
		s := &SGD{Momentum: spec.Momentum, Dampening: spec.Dampening, Nesterov: spec.Nesterov, WeightDecay: wd}
		if spec.Momentum != 0 {
			s.buf = make([]float32, n)
		}
		return s, nil
	default:
		a := &Adam{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: wd, Decoupled: spec.Type == "adamw",
			m: make([]float32, n), v: make([]float32, n)}
		if len(spec.Betas) == 2 {
			a.Beta1, a.Beta2 = spec.Betas[0], spec.Betas[1]
		}
		if spec.Eps != 0 {
			a.Eps = spec.Eps
		}
		return a, nil
	}
}

// SGD is stochastic gradient descent with PyTorch's update rule:
//
//	g ← g + wd·θ
//	b ← g (first step), else b ← μ·b + (1−dampening)·g
//	g ← g + μ·b (Nesterov), or g ← b
//	θ ← θ − lr·g
type SGD struct {
	Momentum, Dampening, WeightDecay float64
	Nesterov                         bool
	buf                              []float32
	step                             int64
}

func (s *SGD) Step(params, grads []float32, lr float64) {
	s.step++
	wd, mu, damp := float32(s.WeightDecay), float32(s.Momentum), float32(1-s.Dampening)
	first := s.step == 1
	params, grads = params[:len(grads)], grads[:len(grads)]
	buf := s.buf
	if buf != nil {
		buf = buf[:len(grads)]
	}
	for i, g := range grads {
		p := params[i]
		g += wd * p
		if buf != nil {
			if first {
				buf[i] = g
			} else {
				buf[i] = mu*buf[i] + damp*g
			}
			if s.Nesterov {
				g += mu * buf[i]
			} else {
				g = buf[i]
			}
		}
		params[i] = p - float32(lr)*g
	}
}

func (s *SGD) State() (map[string][]float32, int64) {
	if s.buf == nil {
		return map[string][]float32{}, s.step
	}
	return map[string][]float32{"momentum": s.buf}, s.step
}

func (s *SGD) SetStep(step int64) { s.step = step }

// Adam is Adam, or AdamW when Decoupled, with PyTorch's update rule:
//
//	θ ← θ·(1 − lr·wd) (AdamW), or g ← g + wd·θ (Adam)
//	m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
//	θ ← θ − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε)
type Adam struct {
	Beta1, Beta2, Eps, WeightDecay float64
	Decoupled                      bool
	m, v                           []float32
	step                           int64
}

func (a *Adam) Step(params, grads []float32, lr float64) {
	a.step++
	n := len(grads)
	tensor.AdamStep(params[:n], grads, a.m[:n], a.v[:n], a.Args(lr))
}

// Args returns the constants of the current step (a.step) at learning
// rate lr.
func (a *Adam) Args(lr float64) tensor.AdamArgs {
	return tensor.NewAdamArgs(a.Beta1, a.Beta2, a.Eps, a.WeightDecay, lr, a.step, a.Decoupled)
}

func (a *Adam) State() (map[string][]float32, int64) {
	return map[string][]float32{"exp_avg": a.m, "exp_avg_sq": a.v}, a.step
}

func (a *Adam) SetStep(step int64) { a.step = step }

// ClipGradNorm rescales grads in place so their global L2 norm is at most
// maxNorm (PyTorch's clip_grad_norm_: scale by maxNorm/(norm + 1e-6) when
// that is below 1) and returns the norm before clipping.
func ClipGradNorm(grads []float32, maxNorm float64) float64 {
	var ss float64
	for _, g := range grads {
		ss += float64(g) * float64(g)
	}
	norm := math.Sqrt(ss)
	if coef := maxNorm / (norm + 1e-6); coef < 1 {
		c := float32(coef)
		for i := range grads {
			grads[i] *= c
		}
	}
	return norm
}

// String describes the optimizer spec briefly.
func (s OptimizerSpec) String() string { return fmt.Sprintf("%s(lr=%g)", s.Type, s.LR) }
