package cuda

import (
	"unsafe"

	"github.com/maas-ml/maas/tensor"
)

// AddBias adds bias[j] to every x[o, j, i] of x (outer, len(bias), inner).
func (b *Backend) AddBias(x, bias []float32, outer, inner int) {
	c := len(bias)
	if outer*c*inner == 0 {
		return
	}
	b.enter()
	defer b.leave()
	px := b.up(sA, x[:outer*c*inner])
	pb := b.up(sB, bias)
	b.run(kAddBias, outer*c*inner, ptr(px), ptr(pb), i32(outer), i32(c), i32(inner))
	b.down(x[:outer*c*inner], sA)
}

// SumBias accumulates db[j] += Σ_o Σ_i dy[o, j, i].
func (b *Backend) SumBias(dy, db []float32, outer, inner int) {
	c := len(db)
	if c == 0 {
		return
	}
	b.enter()
	defer b.leave()
	pdy := b.up(sA, dy[:outer*c*inner])
	pdb := b.up(sB, db)
	b.run(kSumBias, c, ptr(pdy), ptr(pdb), i32(outer), i32(c), i32(inner))
	b.down(db, sB)
}

// Transpose021 writes dst (b, a, c) from src (a, b, c).
func (b *Backend) Transpose021(src, dst []float32, a, bb, c int) {
	n := a * bb * c
	if n == 0 {
		return
	}
	b.enter()
	defer b.leave()
	ps := b.up(sA, src[:n])
	pd := b.scratch(sB, 4*n)
	b.run(kTranspose021, n, ptr(ps), ptr(pd), i32(a), i32(bb), i32(c))
	b.down(dst[:n], sB)
}

// unary runs an elementwise kernel k(x, y, n) in place on the device.
func (b *Backend) unary(k kernel, x, y []float32) {
	n := len(x)
	if n == 0 {
		return
	}
	b.enter()
	defer b.leave()
	px := b.up(sA, x)
	b.run(k, n, ptr(px), ptr(px), i32(n))
	b.down(y[:n], sA)
}

// Relu writes y = max(x, 0); y may be x.
func (b *Backend) Relu(x, y []float32) { b.unary(kRelu, x, y) }

// Sigmoid writes y = 1/(1 + exp(−x)); y may be x.
func (b *Backend) Sigmoid(x, y []float32) { b.unary(kSigmoid, x, y) }

// Tanh writes y = tanh(x); y may be x.
func (b *Backend) Tanh(x, y []float32) { b.unary(kTanh, x, y) }

// ReluBackward writes dx = dy where y > 0, else 0; dx may be dy.
func (b *Backend) ReluBackward(dy, y, dx []float32) {
	n := len(dy)
	if n == 0 {
		return
	}
	b.enter()
	defer b.leave()
	pdy := b.up(sA, dy)
	py := b.up(sB, y[:n])
	b.run(kReluBackward, n, ptr(pdy), ptr(py), ptr(pdy), i32(n))
	b.down(dx[:n], sA)
}

// MaxPool pools x (planes, H, W) into y (planes, OH, OW) and records each
// maximum's flat index into x in idx (when not nil).
func (b *Backend) MaxPool(g tensor.PoolGeom, planes int, x, y []float32, idx []int32) {
	out := planes * g.OH() * g.OW()
	if out == 0 {
		return
	}
	b.enter()
	defer b.leave()
	px := b.up(sA, x[:planes*g.H*g.W])
	py := b.scratch(sB, 4*out)
	var pidx uintptr
	if idx != nil {
		pidx = b.scratch(sC, 4*out)
	}
	b.runGeom(kMaxPool, out, poolGeom(g, planes), ptr(px), ptr(py), ptr(pidx))
	b.down(y[:out], sB)
	if idx != nil {
		b.downInt(idx[:out], sC)
	}
}

// MaxPoolBackward overwrites dx (planes, H, W) with each dy[o] added at
// dx[idx[o]]; idx must be what MaxPool wrote (each index in its window).
func (b *Backend) MaxPoolBackward(g tensor.PoolGeom, planes int, dy []float32, idx []int32, dx []float32) {
	out, size := planes*g.OH()*g.OW(), planes*g.H*g.W
	if size == 0 {
		return
	}
	b.enter()
	defer b.leave()
	pdy := b.up(sA, dy[:out])
	pidx := b.upInt(sB, idx[:out])
	pdx := b.scratch(sC, 4*size)
	b.runGeom(kMaxPoolBackward, size, poolGeom(g, planes), ptr(pdy), ptr(pidx), ptr(pdx))
	b.down(dx[:size], sC)
}

// Softmax writes y = softmax(x) row by row for x (rows, cols); y may be x.
func (b *Backend) Softmax(x, y []float32, rows, cols int) {
	if rows*cols == 0 {
		return
	}
	b.enter()
	defer b.leave()
	px := b.up(sA, x[:rows*cols])
	b.run(kSoftmax, rows, ptr(px), ptr(px), i32(rows), i32(cols))
	b.down(y[:rows*cols], sA)
}

// Argmax writes the column of each row's maximum (the first on ties).
func (b *Backend) Argmax(x []float32, rows, cols int, out []int32) {
	if rows*cols == 0 {
		return
	}
	b.enter()
	defer b.leave()
	px := b.up(sA, x[:rows*cols])
	po := b.scratch(sB, 4*rows)
	b.run(kArgmax, rows, ptr(px), i32(rows), i32(cols), ptr(po))
	b.downInt(out[:rows], sB)
}

// maxParts bounds the partial sums of a reduction.
const maxParts = 16384

// dot returns Σ x[i]·y[i], or Σ x[i] for a nil y: parts partial sums in
// double on the device, added here in order.
func (b *Backend) dot(x, y []float32) float32 {
	n := len(x)
	if n == 0 {
		return 0
	}
	b.enter()
	defer b.leave()
	parts := min(n, maxParts)
	px := b.up(sA, x)
	var py uintptr
	if y != nil {
		py = b.up(sB, y[:n])
	}
	pp := b.scratch(sParts, 8*parts)
	b.run(kPartialDot, parts, ptr(px), ptr(py), i32(n), i32(parts), ptr(pp))
	if cap(b.parts) < parts {
		b.parts = make([]float64, maxParts)
	}
	ps := b.parts[:parts]
	if b.err == nil {
		b.fail(b.bufs[sParts].download(b.eng, unsafe.Pointer(&ps[0]), 8*parts))
	}
	var s float64
	for _, v := range ps {
		s += v
	}
	return float32(s)
}

// Sum returns Σ x[i].
func (b *Backend) Sum(x []float32) float32 { return b.dot(x, nil) }

// Dot returns Σ x[i]·y[i].
func (b *Backend) Dot(x, y []float32) float32 { return b.dot(x, y) }

// Axpy computes y += alpha·x.
func (b *Backend) Axpy(alpha float32, x, y []float32) {
	n := len(x)
	if n == 0 {
		return
	}
	b.enter()
	defer b.leave()
	px := b.up(sA, x)
	py := b.up(sB, y[:n])
	b.run(kAxpy, n, f32(alpha), ptr(px), ptr(py), i32(n))
	b.down(y[:n], sB)
}

// Scale computes x *= alpha.
func (b *Backend) Scale(alpha float32, x []float32) {
	n := len(x)
	if n == 0 {
		return
	}
	b.enter()
	defer b.leave()
	px := b.up(sA, x)
	b.run(kScale, n, f32(alpha), ptr(px), i32(n))
	b.down(x, sA)
}
