package nn

import (
	"math"

	"github.com/maas-ml/maas/tensor"
)

// SoftmaxCrossEntropy is the mean negative log-likelihood of softmax(logits)
// over a batch: L = (1/n)·Σ_i [logsumexp(x_i) − x_i[y_i]], PyTorch's
// CrossEntropyLoss. Backward gives dL/dx = (softmax(x) − onehot(y)) / n.
type SoftmaxCrossEntropy struct {
	be      tensor.Backend
	classes int
	probs   []float32
	grad    []float32
	labels  []int32
	pred    []int32
	n       int
}

// NewSoftmaxCrossEntropy returns the loss for logits of the given class count.
func NewSoftmaxCrossEntropy(b tensor.Backend, classes int) *SoftmaxCrossEntropy {
	return &SoftmaxCrossEntropy{be: b, classes: classes}
}

// Forward returns the mean loss of logits (n, classes) against labels (n).
// Labels outside [0, classes) count as wrong with an infinite loss.
func (l *SoftmaxCrossEntropy) Forward(logits []float32, labels []int32, n int) float32 {
	c := l.classes
	l.n, l.labels = n, labels[:n]
	l.probs = grow(l.probs, n*c)
	l.be.Softmax(logits[:n*c], l.probs, n, c)
	var total float64
	for i, y := range l.labels {
		row := logits[i*c : (i+1)*c]
		if y < 0 || int(y) >= c {
			total = math.Inf(1)
			continue
		}
		mx := float64(row[0])
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		var s float64
		for _, v := range row {
			s += math.Exp(float64(v) - mx)
		}
		total += mx + math.Log(s) - float64(row[y])
	}
	return float32(total / float64(n))
}

// Backward returns dL/dlogits for the last Forward, a buffer (n, classes).
func (l *SoftmaxCrossEntropy) Backward() []float32 {
	c := l.classes
	l.grad = grow(l.grad, l.n*c)
	copy(l.grad, l.probs)
	for i, y := range l.labels {
		if y >= 0 && int(y) < c {
			l.grad[i*c+int(y)]--
		}
	}
	l.be.Scale(1/float32(l.n), l.grad)
	return l.grad
}

// Correct returns how many samples of the last Forward the logits classify
// right (argmax equals the label).
func (l *SoftmaxCrossEntropy) Correct() int {
	l.pred = growInt32(l.pred, l.n)
	l.be.Argmax(l.probs, l.n, l.classes, l.pred)
	k := 0
	for i, p := range l.pred {
		if p == l.labels[i] {
			k++
		}
	}
	return k
}

// Probs returns the softmax probabilities of the last Forward (n, classes).
func (l *SoftmaxCrossEntropy) Probs() []float32 { return l.probs }
