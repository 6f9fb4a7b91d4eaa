package serve

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/modeldir"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/nn/safetensors"
	"github.com/maas-ml/maas/tensor"
)

// ModelInfo is one served model.
type ModelInfo struct {
	Name string
	// Versions are the loaded versions, newest (the default) first.
	Versions []int
	Ready    bool
}

// Models lists the served models by name.
func (s *Server) Models() []ModelInfo {
	t := s.table.Load()
	out := make([]ModelInfo, 0, len(t.models))
	for name, vs := range t.models {
		mi := ModelInfo{Name: name, Ready: !s.closing.Load()}
		for _, v := range vs {
			mi.Versions = append(mi.Versions, v.num)
		}
		out = append(out, mi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LoadDir loads the model directory dir (model.yaml and
// model.safetensors, as modeldir.Save writes them) as version of the model
// its spec names. See Load.
func (s *Server) LoadDir(dir string, version int) error {
	specYAML, err := os.ReadFile(filepath.Join(dir, modeldir.SpecFile))
	if err != nil {
		return s.loadFailed("", version, fmt.Errorf("%w: %v", ErrLoad, err))
	}
	weights, err := os.ReadFile(filepath.Join(dir, modeldir.WeightsFile))
	if err != nil {
		return s.loadFailed("", version, fmt.Errorf("%w: %v", ErrLoad, err))
	}
	return s.Load("", version, specYAML, weights)
}

// Load builds version (≥ 1) of the model name from its job spec (YAML) and
// weights (safetensors), warms it up, and serves it; an empty name means
// the spec's. The newest version serves requests that name none; the one
// before it stays for requests pinned to it, and older ones are released
// once their last request ends.
//
// If anything fails, the error wraps ErrLoad and what was served before is
// served still. Loading a version that is served already returns
// ErrVersionLoaded, one older than both kept ErrVersionOld; neither
// changes anything.
func (s *Server) Load(name string, version int, specYAML, weights []byte) (err error) {
	if s.closing.Load() {
		return ErrClosed
	}
	if version < 1 {
		return s.loadFailed(name, version, fmt.Errorf("%w: version %d: versions count from 1", ErrLoad, version))
	}
	spec, err := jobspec.Parse(specYAML)
	if err != nil {
		return s.loadFailed(name, version, fmt.Errorf("%w: %s: %v", ErrLoad, modeldir.SpecFile, err))
	}
	if name == "" {
		name = spec.Name
	}
	if !validName(name) {
		return s.loadFailed(name, version, fmt.Errorf("%w: model name %q: use letters, digits, '-', '_' and '.'", ErrLoad, name))
	}
	if err := s.table.Load().check(name, version); err != nil {
		return err
	}
	if err := s.makeRoom(name, version); err != nil {
		return err
	}
	start := time.Now()
	v, err := s.build(name, version, spec, weights)
	if err != nil {
		return s.loadFailed(name, version, fmt.Errorf("%w: %s version %d: %v", ErrLoad, name, version, err))
	}
	s.mu.Lock() // Shutdown waits for the batchers once closed is set
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.batchers.Add(1)
	s.mu.Unlock()
	var running sync.WaitGroup
	for _, b := range v.instances {
		running.Go(b.run)
	}
	go func() {
		defer s.batchers.Done()
		running.Wait()
		s.met.forget(v.name, v.label)
	}()
	if err := s.publish(v); err != nil {
		v.retire()
		return err
	}
	s.met.loads.WithLabelValues(name).Inc()
	s.log.Info("model loaded", zap.String("model", name), zap.Int("version", version),
		zap.Duration("took", time.Since(start)), zap.Int("max_batch", v.maxBatch))
	return nil
}

// Unload stops serving every version of the model name; requests in flight
// finish first.
func (s *Server) Unload(name string) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	nt, dropped, err := s.table.Load().without(name)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.table.Store(nt)
	s.mu.Unlock()
	for _, v := range dropped {
		v.retire()
	}
	s.log.Info("model unloaded", zap.String("model", name))
	return nil
}

// makeRoom retires, before a new version is built, the versions its
// arrival will push out, so a swap holds at most the versions kept plus the
// new one. (If the build then fails, the newest version still serves.)
func (s *Server) makeRoom(name string, version int) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	nt, dropped := s.table.Load().makeRoom(name, version)
	s.table.Store(nt)
	s.mu.Unlock()
	for _, v := range dropped {
		v.retire()
	}
	return nil
}

// publish adds v to the served table and retires the versions it pushes out.
func (s *Server) publish(v *version) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	nt, dropped, err := s.table.Load().with(v)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.table.Store(nt)
	s.mu.Unlock()
	for _, d := range dropped {
		d.retire()
	}
	return nil
}

// build makes a warmed-up version from its spec and weights; the batcher
// is not started yet.
func (s *Server) build(name string, num int, spec *jobspec.Spec, weights []byte) (v *version, err error) {
	if s.beforeBuild != nil {
		s.beforeBuild()
	}
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("building the model: %v", r)
		}
	}()
	in := spec.Model.Input
	f, err := safetensors.Decode(weights)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", modeldir.WeightsFile, err)
	}
	kind, ok := jobspec.Kinds[spec.Dataset.Kind]
	var text *textModel
	if spec.Dataset.Kind == "text" {
		vocab := []rune(f.Metadata[modeldir.VocabKey])
		if len(vocab) == 0 {
			return nil, fmt.Errorf("%s: a text model's weights carry its vocabulary in metadata %q; these have none", modeldir.WeightsFile, modeldir.VocabKey)
		}
		if text, err = newTextModel(name, vocab, spec.Dataset.SeqLen); err != nil {
			return nil, err
		}
	} else if len(in) == 0 || !ok {
		return nil, fmt.Errorf("%s: model.input %v, dataset %q: serving needs a model of a known dataset", modeldir.SpecFile, in, spec.Dataset.Kind)
	}
	models := make([]*nn.Model, s.cfg.Instances)
	for i := range models {
		if models[i], err = nn.BuildInference(spec.Model, s.backend); err != nil {
			return nil, fmt.Errorf("%s: %v", modeldir.SpecFile, err)
		}
		if err := models[i].SetWeights(f); err != nil {
			return nil, fmt.Errorf("%s: %v", modeldir.WeightsFile, err)
		}
	}
	m := models[0]
	out := m.OutShape()
	var classes int
	switch {
	case text != nil:
		if len(out) != 2 || out[0] != in[0] || out[1] != len(text.text.Vocab) {
			return nil, fmt.Errorf("%s: the model outputs %v per sample; a text model needs (%d steps, %d characters)", modeldir.SpecFile, out, in[0], len(text.text.Vocab))
		}
		classes = out[1]
	case len(out) != 1:
		return nil, fmt.Errorf("%s: the model outputs %v per sample; serving needs one logit per class", modeldir.SpecFile, out)
	default:
		classes = out[0]
	}
	maxBatch, delay, maxQueue := spec.ServingConfig()
	ss := tensor.NumElements(in)
	v = &version{
		name: name, num: num, label: versionLabel(num),
		inShape: append([]int(nil), in...), classes: classes, sampleSize: ss, maxBatch: maxBatch, text: text,
	}
	if text == nil {
		// Normalisation is per channel of the dataset's (C, H, W) samples,
		// which the model's input may reshape.
		v.norm = newPixelNorm(spec.Normalization(), kind.Shape[0], tensor.NumElements(kind.Shape[1:]))
	}
	b := newBatcher(m, ss, classes, maxBatch, delay, maxQueue)
	b.setText(text)
	b.single = s.cfg.DisableBatching
	b.incoming = &v.incoming
	b.depth = s.met.queueDepth.WithLabelValues(name, v.label)
	b.sizes = s.met.batchSize.WithLabelValues(name, v.label)
	b.beforeForward = s.beforeForward
	v.batch, v.instances = b, []*batcher{b}
	for _, m := range models[1:] {
		v.instances = append(v.instances, b.another(m))
	}
	for _, b := range v.instances {
		if err := b.warm(); err != nil {
			return nil, fmt.Errorf("%s: %v", modeldir.WeightsFile, err)
		}
	}
	return v, nil
}

// loadFailed counts and logs a failed load and returns err.
func (s *Server) loadFailed(name string, version int, err error) error {
	if errors.Is(err, ErrVersionLoaded) || errors.Is(err, ErrVersionOld) {
		return err
	}
	s.met.loadFailures.WithLabelValues(name).Inc()
	s.log.Error("model load failed; what was served is served still", zap.String("model", name), zap.Int("version", version), zap.Error(err))
	return err
}

// validName reports whether name can be a path segment of the API: the
// characters a job spec allows in names.
func validName(name string) bool {
	if name == "" || name == "." || name == ".." {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}
