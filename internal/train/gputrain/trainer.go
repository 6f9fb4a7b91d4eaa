package gputrain

import (
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/tensor"
	"github.com/maas-ml/maas/tensor/cuda"
)

// ErrUnsupportedLayer: the model has a layer the device-resident Trainer
// does not run; such a model trains through the cuda.Backend's host-slice
// methods instead.
var ErrUnsupportedLayer = errors.New("gputrain: layer not supported by the device-resident trainer")

// Trainer runs a model's training step on the GPU with everything resident
// there: parameters, gradients, activations, scratch and optimizer state
// live in one device allocation made by NewTrainer for the largest batch,
// and the host sees only the batch going in, the per-row losses coming out,
// and the parameters or gradients when asked for them (through pinned
// buffers).
//
// A step (Step) is: upload the batch → forward → softmax cross-entropy →
// zero the gradients → backward, all queued on the Backend's one stream
// through a cuda.Queue. The second time a batch size comes, the step is
// captured as a CUDA graph and every later step of that size replays it in
// one launch; a size seen once (a short last batch) runs as separate
// launches. Update applies the optimizer (clipping first when asked), one
// launch outside the graph because its scalars change every step.
//
// The computation is package nn's, layer by layer, with the same kernels
// as the Backend's host-slice methods: the tests compare a Trainer on the
// host emulation (cuda.OpenHost) with nn on tensor.Reference. A Trainer
// is used by one goroutine at a time.
type Trainer struct {
	b       *cuda.Backend
	layers  []devLayer
	batch   int // the largest batch
	inSize  int // floats per sample
	rowsPer int // loss rows (label entries) per sample
	classes int
	nparams int

	opt  *optSettings // nil: gradients only (a worker pushes them)
	clip float64
	step int64 // optimizer steps taken

	mem       uintptr // the one device allocation
	pin       unsafe.Pointer
	params    uintptr
	grads     uintptr
	state     [2]uintptr // momentum, or Adam's m and v
	x, labels uintptr
	probs, dy uintptr // the loss's probabilities and dL/dlogits
	loss      uintptr // per-row losses, (rows)
	pred      uintptr // per-row argmax, (rows) int32
	parts     uintptr // partial sums of Σ g² for clipping, float64
	col, tmp  uintptr // scratch shared by the layers

	// Pinned host memory: the parameter/gradient transfers, the batch, and
	// what a step brings back.
	hParams []float32
	hX      []float32
	hY      []int32
	hLoss   []float32
	hPred   []int32
	hParts  []float64
	nParts  int

	graphs   map[int]*cuda.Graph // captured steps by batch size
	seen     map[int]int         // steps run per batch size
	graphErr error               // why capture is off, after a failure
}

// maxGraphs bounds the batch sizes kept as captured graphs (the full batch,
// a short last batch, a worker's two slice sizes).
const maxGraphs = 4

// maxParts bounds the partial sums of the gradient's squared norm (for
// clipping), added on the host: as many as the Backend's own reductions.
const maxParts = 16384

// optSettings are an optimizer's resolved hyper-parameters (nn's defaults
// applied).
type optSettings struct {
	sgd  *nn.SGD
	adam *nn.Adam
}

// NewTrainer lays out spec's model on b for batches of up to batch samples.
// With opt, Update applies that optimizer on the device; without, the
// Trainer computes gradients only (Grads brings them back). The
// parameters start at zero: SetParams gives them their values.
func NewTrainer(b *cuda.Backend, spec nn.ModelSpec, batch int, opt *nn.OptimizerSpec) (*Trainer, error) {
	if batch < 1 {
		return nil, fmt.Errorf("gputrain: trainer batch must be positive, got %d", batch)
	}
	for i, l := range spec.Layers {
		switch l.Type {
		case "conv2d", "relu", "maxpool2d", "flatten", "dense", "lstm", "gru":
		default:
			return nil, fmt.Errorf("%w: model.layers[%d] is %s; the trainer runs conv2d, relu, maxpool2d, flatten, dense, lstm and gru", ErrUnsupportedLayer, i, l.Type)
		}
	}
	m, err := nn.BuildInference(spec, tensor.Reference) // shapes and the parameter layout
	if err != nil {
		return nil, err
	}
	out := m.OutShape()
	t := &Trainer{
		b: b, batch: batch, inSize: tensor.NumElements(m.InShape()), nparams: len(m.Params),
		classes: out[len(out)-1], rowsPer: tensor.NumElements(out[:len(out)-1]),
		graphs: map[int]*cuda.Graph{}, seen: map[int]int{},
	}
	if opt != nil {
		o, err := nn.NewOptimizer(*opt, 0)
		if err != nil {
			return nil, err
		}
		t.opt = &optSettings{}
		switch o := o.(type) {
		case *nn.SGD:
			t.opt.sgd = o
		case *nn.Adam:
			t.opt.adam = o
		}
		t.clip = opt.ClipNorm
	}
	var lay layout
	if err := t.buildLayers(spec, m, batch, &lay); err != nil {
		return nil, err
	}
	rows := batch * t.rowsPer
	lay.take(&t.params, 4*t.nparams)
	lay.take(&t.grads, 4*t.nparams)
	switch {
	case t.opt == nil:
	case t.opt.adam != nil:
		lay.take(&t.state[0], 4*t.nparams)
		lay.take(&t.state[1], 4*t.nparams)
	case t.opt.sgd.Momentum != 0:
		lay.take(&t.state[0], 4*t.nparams)
	}
	lay.take(&t.x, 4*batch*t.inSize)
	lay.take(&t.labels, 4*rows)
	lay.take(&t.probs, 4*rows*t.classes)
	lay.take(&t.dy, 4*rows*t.classes)
	lay.take(&t.loss, 4*rows)
	lay.take(&t.pred, 4*rows)
	t.nParts = min(max(t.nparams, 1), maxParts)
	if t.clip > 0 {
		lay.take(&t.parts, 8*t.nParts)
	}
	hostBytes := 8*t.nParts + 4*(t.nparams+batch*t.inSize+3*rows)
	if err := b.Do(func(q *cuda.Queue) error { return t.alloc(q, &lay, hostBytes, rows) }); err != nil {
		return nil, err
	}
	return t, nil
}

// alloc makes the device allocation and the pinned host memory, and
// zeroes the optimizer state.
func (t *Trainer) alloc(q *cuda.Queue, lay *layout, hostBytes, rows int) error {
	mem, err := q.Alloc(lay.size)
	if err != nil {
		return fmt.Errorf("gputrain: trainer memory (%d MiB): %w", lay.size>>20, err)
	}
	t.mem = mem
	lay.place(mem)
	p, err := q.AllocHost(hostBytes)
	if err != nil {
		return errors.Join(err, t.free(q))
	}
	t.pin = p
	// float64s first, for their alignment.
	t.hParts = unsafe.Slice((*float64)(p), t.nParts)
	f := unsafe.Slice((*float32)(unsafe.Add(p, 8*t.nParts)), t.nparams+t.batch*t.inSize+3*rows)
	t.hParams, f = f[:t.nparams], f[t.nparams:]
	t.hX, f = f[:t.batch*t.inSize], f[t.batch*t.inSize:]
	t.hLoss, f = f[:rows], f[rows:]
	i := unsafe.Slice((*int32)(unsafe.Pointer(unsafe.SliceData(f))), 2*rows)
	t.hY, t.hPred = i[:rows], i[rows:]
	for _, s := range t.state {
		if s != 0 {
			q.Fill(s, t.nparams, 0)
		}
	}
	if err := q.Err(); err != nil {
		return errors.Join(err, t.free(q))
	}
	return q.Sync()
}

// Batch is the largest batch the Trainer was laid out for.
func (t *Trainer) Batch() int { return t.batch }

// NumParams is the length of the flat parameter vector (nn.Model.Params).
func (t *Trainer) NumParams() int { return t.nparams }

// GraphError says why steps stopped being captured as CUDA graphs (a
// capture failed; they run as separate launches since), or nil.
func (t *Trainer) GraphError() error { return t.graphErr }

// SetParams copies θ (nn.Model.Params' layout) to the device.
func (t *Trainer) SetParams(src []float32) error {
	if len(src) != t.nparams {
		return fmt.Errorf("gputrain: SetParams of %d floats, the model has %d", len(src), t.nparams)
	}
	return t.b.Do(func(q *cuda.Queue) error {
		// The previous transfer through hParams is done: every use syncs.
		copy(t.hParams, src)
		q.Upload(t.params, unsafe.Pointer(&t.hParams[0]), 4*t.nparams)
		return q.Sync()
	})
}

// Params copies θ from the device into dst.
func (t *Trainer) Params(dst []float32) error { return t.fetch(dst, t.params) }

// Grads copies the last Step's gradients into dst (after Update, the
// clipped ones when clipping applies).
func (t *Trainer) Grads(dst []float32) error { return t.fetch(dst, t.grads) }

func (t *Trainer) fetch(dst []float32, src uintptr) error {
	if len(dst) != t.nparams {
		return fmt.Errorf("gputrain: a copy of %d floats, the model has %d", len(dst), t.nparams)
	}
	return t.b.Do(func(q *cuda.Queue) error {
		q.Download(unsafe.Pointer(&t.hParams[0]), src, 4*t.nparams)
		if err := q.Sync(); err != nil {
			return err
		}
		copy(dst, t.hParams)
		return nil
	})
}

// Step trains on a batch of n samples: x (n, input...) and one label per
// loss row, y (n·rows per sample). It computes the gradients (Grads) and
// waits for the mean loss over the rows (as nn.SoftmaxCrossEntropy) and
// how many rows the model classifies right.
func (t *Trainer) Step(x []float32, y []int32, n int) (loss float32, correct int, err error) {
	rows := n * t.rowsPer
	switch {
	case n < 1 || n > t.batch:
		return 0, 0, fmt.Errorf("gputrain: a step of %d samples on a trainer for 1 to %d", n, t.batch)
	case len(x) < n*t.inSize || len(y) < rows:
		return 0, 0, fmt.Errorf("gputrain: a step of %d samples needs %d inputs and %d labels, got %d and %d", n, n*t.inSize, rows, len(x), len(y))
	}
	err = t.b.Do(func(q *cuda.Queue) error {
		copy(t.hX, x[:n*t.inSize])
		copy(t.hY, y[:rows])
		t.run(q, n)
		return q.Sync()
	})
	if err != nil {
		return 0, 0, err
	}
	// The mean as nn.SoftmaxCrossEntropy takes it: in float64, +Inf for
	// any label out of range.
	var total float64
	for i, l := range t.hLoss[:rows] {
		total += float64(l)
		if t.hPred[i] == t.hY[i] {
			correct++
		}
	}
	return float32(total / float64(rows)), correct, nil
}

// run queues a step of n samples: a graph replay, a capture followed by
// its replay, or the separate launches.
func (t *Trainer) run(q *cuda.Queue, n int) {
	g := t.graphs[n]
	if g == nil && t.graphErr == nil && t.seen[n] > 0 && len(t.graphs) < maxGraphs {
		var err error
		if g, err = q.Capture(func() { t.record(q, n) }); err != nil {
			t.graphErr = err // run uncaptured from now on
		} else {
			t.graphs[n] = g
		}
	}
	t.seen[n]++
	if g != nil {
		q.LaunchGraph(g)
		return
	}
	t.record(q, n)
}

// record queues the work of a step of n samples: nothing in it waits for
// the stream, so it can be captured.
func (t *Trainer) record(q *cuda.Queue, n int) {
	rows := n * t.rowsPer
	q.Upload(t.x, unsafe.Pointer(&t.hX[0]), 4*n*t.inSize)
	q.Upload(t.labels, unsafe.Pointer(&t.hY[0]), 4*rows)
	cur := t.x
	for _, l := range t.layers {
		cur = l.forward(q, t, cur, n)
	}
	q.SoftmaxXent(cur, t.labels, t.probs, t.loss, rows, t.classes)
	q.Argmax(t.probs, rows, t.classes, t.pred)
	q.SoftmaxXentBackward(t.probs, t.labels, t.dy, rows, t.classes, 1/float32(rows))
	q.Fill(t.grads, t.nparams, 0)
	dy := t.dy
	for i := len(t.layers) - 1; i >= 0 && dy != 0; i-- {
		dy = t.layers[i].backward(q, t, dy, n)
	}
	if t.clip > 0 {
		q.PartialDot(t.grads, t.grads, t.nparams, t.nParts, t.parts)
		q.Download(unsafe.Pointer(&t.hParts[0]), t.parts, 8*t.nParts)
	}
	q.Download(unsafe.Pointer(&t.hLoss[0]), t.loss, 4*rows)
	q.Download(unsafe.Pointer(&t.hPred[0]), t.pred, 4*rows)
}

// Update applies the optimizer to the last Step's gradients at learning
// rate lr, as nn's optimizers and nn.ClipGradNorm do (clip_norm first). It
// queues the work and returns; the next call waits for it.
func (t *Trainer) Update(lr float64) error {
	if t.opt == nil {
		return errors.New("gputrain: Update on a trainer made without an optimizer")
	}
	t.step++
	return t.b.Do(func(q *cuda.Queue) error {
		n := t.nparams
		if t.clip > 0 {
			var ss float64
			for _, v := range t.hParts {
				ss += v
			}
			if coef := t.clip / (math.Sqrt(ss) + 1e-6); coef < 1 {
				q.Scale(float32(coef), t.grads, n)
			}
		}
		if s := t.opt.sgd; s != nil {
			q.SGD(t.params, t.grads, t.state[0], n, float32(lr), float32(s.WeightDecay),
				float32(s.Momentum), float32(1-s.Dampening), t.step == 1, s.Nesterov)
		} else {
			a := t.opt.adam
			q.Adam(t.params, t.grads, t.state[0], t.state[1], n,
				tensor.NewAdamArgs(a.Beta1, a.Beta2, a.Eps, a.WeightDecay, lr, int64(t.step), a.Decoupled))
		}
		return q.Err()
	})
}

// Close frees the Trainer's graphs and memory.
func (t *Trainer) Close() error {
	return t.b.Do(func(q *cuda.Queue) error {
		err := q.Sync()
		for n, g := range t.graphs {
			err = errors.Join(err, q.FreeGraph(g))
			delete(t.graphs, n)
		}
		return errors.Join(err, t.free(q))
	})
}

// free releases the device allocation and the pinned memory.
func (t *Trainer) free(q *cuda.Queue) error {
	var err error
	if t.mem != 0 {
		err = q.Free(t.mem)
		t.mem = 0
	}
	if t.pin != nil {
		err = errors.Join(err, q.FreeHost(t.pin))
		t.pin = nil
	}
	return err
}

// layout assigns the regions of the Trainer's one device allocation:
// take records a region's offset in *p, place turns the offsets into
// addresses once the allocation is made.
type layout struct {
	size   int
	fields []*uintptr
}

func (l *layout) take(p *uintptr, bytes int) {
	*p = uintptr(l.size)
	l.size += (max(bytes, 4) + 255) &^ 255
	l.fields = append(l.fields, p)
}

func (l *layout) place(base uintptr) {
	for _, p := range l.fields {
		*p += base
	}
}
