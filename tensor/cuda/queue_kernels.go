package cuda

import "github.com/maas-ml/maas/tensor"

// The kernels of kernels/*.cu on device addresses, queued on the Queue's
// stream: one method per kernel, its arguments in the kernel's order, the
// same launch the Backend's tensor.Backend methods make (one thread per
// output; see each kernel's comment in its .cu file). Arrays are
// row-major float32 unless named int32 or float64; shapes are in
// parentheses. An output may not overlap an input unless the comment says
// it may.

// Gemm queues the row-major C (m, n) = alpha·op(A)·op(B) + beta·C, with
// op(A) (m, k) and op(B) (k, n) and the leading dimensions of
// tensor.Backend.Gemm, through cuBLAS (the plain maas_gemm kernel when k
// is 0, where C = beta·C).
func (q *Queue) Gemm(transA, transB bool, m, n, k int, alpha float32, a uintptr, lda int, b uintptr, ldb int, beta float32, c uintptr, ldc int) {
	q.b.gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Im2col writes col (C·KH·KW, n·OH·OW) from x (n, C, H, W):
//
//	col[(c, kh, kw), (i, oh, ow)] = x[i, c, oh·SH+kh−PH, ow·SW+kw−PW], 0 in the padding
func (q *Queue) Im2col(g tensor.ConvGeom, n int, x, col uintptr) {
	q.b.runGeom(kIm2col, g.Rows()*n*g.OH()*g.OW(), convGeom(g, n), ptr(x), ptr(col))
}

// Col2im overwrites x (n, C, H, W) with the adjoint of Im2col: each pixel
// the sum of the col entries Im2col reads from it.
func (q *Queue) Col2im(g tensor.ConvGeom, n int, col, x uintptr) {
	q.b.runGeom(kCol2im, n*g.C*g.H*g.W, convGeom(g, n), ptr(col), ptr(x))
}

// ConvBiasRelu writes y (n, oc, p) from a convolution's GEMM output yc
// (oc, n·p), adding bias (oc) unless bias is 0 and applying max(·, 0)
// when relu:
//
//	y[i, o, j] = relu(yc[o, i·p + j] + bias[o])
func (q *Queue) ConvBiasRelu(yc, bias, y uintptr, n, oc, p int, relu bool) {
	q.b.run(kConvBiasRelu, n*oc*p, ptr(yc), ptr(bias), ptr(y), i32(n), i32(oc), i32(p), flag(relu))
}

// Transpose021 writes dst (b, a, c) from src (a, b, c): dst[j, i, k] =
// src[i, j, k].
func (q *Queue) Transpose021(src, dst uintptr, a, b, c int) {
	q.b.run(kTranspose021, a*b*c, ptr(src), ptr(dst), i32(a), i32(b), i32(c))
}

// AddBias adds bias[j] to every x[o, j, i] of x (outer, c, inner), in
// place.
func (q *Queue) AddBias(x, bias uintptr, outer, c, inner int) {
	q.b.run(kAddBias, outer*c*inner, ptr(x), ptr(bias), i32(outer), i32(c), i32(inner))
}

// SumBias accumulates db[j] += Σ_o Σ_i dy[o, j, i] for dy (outer, c,
// inner) and db (c), summing in float64.
func (q *Queue) SumBias(dy, db uintptr, outer, c, inner int) {
	q.b.run(kSumBias, c, ptr(dy), ptr(db), i32(outer), i32(c), i32(inner))
}

// Relu writes y = max(x, 0) over n elements; y may be x.
func (q *Queue) Relu(x, y uintptr, n int) {
	q.b.run(kRelu, n, ptr(x), ptr(y), i32(n))
}

// ReluBackward writes dx = dy where y > 0, else 0, over n elements; dx
// may be dy.
func (q *Queue) ReluBackward(dy, y, dx uintptr, n int) {
	q.b.run(kReluBackward, n, ptr(dy), ptr(y), ptr(dx), i32(n))
}

// MaxPool pools x (planes, H, W) into y (planes, OH, OW) and writes the
// flat index into x of each maximum (the first on ties) to idx (planes,
// OH, OW) int32, unless idx is 0.
func (q *Queue) MaxPool(g tensor.PoolGeom, planes int, x, y, idx uintptr) {
	q.b.runGeom(kMaxPool, planes*g.OH()*g.OW(), poolGeom(g, planes), ptr(x), ptr(y), ptr(idx))
}

// MaxPoolBackward overwrites dx (planes, H, W) with the sum of the dy[o]
// (planes, OH, OW) whose idx[o] (MaxPool's) is that pixel.
func (q *Queue) MaxPoolBackward(g tensor.PoolGeom, planes int, dy, idx, dx uintptr) {
	q.b.runGeom(kMaxPoolBackward, planes*g.H*g.W, poolGeom(g, planes), ptr(dy), ptr(idx), ptr(dx))
}

// SoftmaxXent is the softmax cross-entropy of logits x (rows, cols) and
// labels (rows) int32: probs (rows, cols) = softmax(x) row by row, and
// loss[r] = logsumexp(x_r) − x_r[labels[r]], +Inf for a label outside
// [0, cols).
func (q *Queue) SoftmaxXent(x, labels, probs, loss uintptr, rows, cols int) {
	q.b.run(kSoftmaxXent, rows, ptr(x), ptr(labels), ptr(probs), ptr(loss), i32(rows), i32(cols))
}

// SoftmaxXentBackward writes dx (rows, cols) = (probs − onehot(labels))·scale,
// for SoftmaxXent's probs and labels (scale is 1/rows for a mean loss).
func (q *Queue) SoftmaxXentBackward(probs, labels, dx uintptr, rows, cols int, scale float32) {
	q.b.run(kSoftmaxXentBackward, rows*cols, ptr(probs), ptr(labels), ptr(dx), i32(rows), i32(cols), f32(scale))
}

// Argmax writes out[r] (rows) int32, the column of row r's maximum in x
// (rows, cols), the first on ties.
func (q *Queue) Argmax(x uintptr, rows, cols int, out uintptr) {
	q.b.run(kArgmax, rows, ptr(x), i32(rows), i32(cols), ptr(out))
}

// PartialDot writes out[t] = Σ_{i ≡ t mod parts} x[i]·y[i] for t < parts,
// over n elements (Σ x[i] when y is 0), out (parts) float64: the caller
// adds the parts in a fixed order.
func (q *Queue) PartialDot(x, y uintptr, n, parts int, out uintptr) {
	q.b.run(kPartialDot, parts, ptr(x), ptr(y), i32(n), i32(parts), ptr(out))
}

// Axpy computes y += alpha·x over n elements.
func (q *Queue) Axpy(alpha float32, x, y uintptr, n int) {
	q.b.run(kAxpy, n, f32(alpha), ptr(x), ptr(y), i32(n))
}

// Scale computes x *= alpha over n elements.
func (q *Queue) Scale(alpha float32, x uintptr, n int) {
	q.b.run(kScale, n, f32(alpha), ptr(x), i32(n))
}

// Fill sets x[i] = v over n elements.
func (q *Queue) Fill(x uintptr, n int, v float32) {
	q.b.run(kFill, n, ptr(x), i32(n), f32(v))
}

// SGD is nn.SGD's step over n parameters, with damp = 1 − dampening and
// the momentum buffer buf (the middle two lines only when buf is not 0):
//
//	g ← g + wd·θ
//	buf ← g (first), else buf ← mu·buf + damp·g
//	g ← g + mu·buf (nesterov), or g ← buf
//	θ ← θ − lr·g
func (q *Queue) SGD(params, grads, buf uintptr, n int, lr, wd, mu, damp float32, first, nesterov bool) {
	q.b.run(kSGD, n, ptr(params), ptr(grads), ptr(buf), i32(n), f32(lr), f32(wd), f32(mu), f32(damp), flag(first), flag(nesterov))
}

// Adam is nn.Adam's step (AdamW's when a.Decoupled) over n parameters
// with the moments m and v, for the constants tensor.NewAdamArgs computes,
// as tensor.AdamStep:
//
//	θ ← θ·decay (decoupled), or g ← g + wd·θ
//	m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
//	θ ← θ − step · m / (√v · invSqrtBC2 + ε)
func (q *Queue) Adam(params, grads, m, v uintptr, n int, a tensor.AdamArgs) {
	q.b.run(kAdam, n, ptr(params), ptr(grads), ptr(m), ptr(v), i32(n), f32(a.StepSize), f32(a.InvSqrtBC2),
		f32(a.Beta1), f32(a.OneMinusB1), f32(a.Beta2), f32(a.OneMinusB2), f32(a.Eps),
		f32(a.WeightDecay), f32(a.Decay), flag(a.Decoupled))
}

// LSTMForward is one LSTM step for n rows of hidden units H: a (n, 4H)
// holds the gate pre-activations (input, forget, cell, output), cprev (n,
// H) is c_{t−1} (0 at the first step); it writes c, tc and h (n, H):
//
//	a ← σ(i), σ(f), tanh(g), σ(o)      (in place)
//	c = f ⊙ c_{t−1} + i ⊙ g;  tc = tanh(c);  h = o ⊙ tc
func (q *Queue) LSTMForward(a, cprev, c, tc, h uintptr, n, hidden int) {
	q.b.run(kLSTMForward, n*hidden, ptr(a), ptr(cprev), ptr(c), ptr(tc), ptr(h), i32(n), i32(hidden))
}

// LSTMBackward is LSTMForward's gradient: from its a and tc, cprev (0 at
// the first step), dh = dL/dh_t and dc = dL/dc_t carried from step t+1
// (n, H), it writes the pre-activation gradients dz (n, 4H) and dc ←
// dL/dc_{t−1}:
//
//	dc' = dh·o·(1 − tc²) + dc
//	dz = dc'·g·i(1−i), dc'·c_{t−1}·f(1−f), dc'·i·(1−g²), dh·tc·o(1−o)
//	dc ← dc'·f
func (q *Queue) LSTMBackward(a, tc, cprev, dh, dc, dz uintptr, n, hidden int) {
	q.b.run(kLSTMBackward, n*hidden, ptr(a), ptr(tc), ptr(cprev), ptr(dh), ptr(dc), ptr(dz), i32(n), i32(hidden))
}

// GRUForward is one GRU step for n rows of hidden units H: a (n, 3H) is
// the input half x·W_ihᵀ + b_ih, hh (n, 3H) = h_{t−1}·W_hhᵀ + b_hh, hprev
// (n, H) is h_{t−1} (0 at the first step); it writes hn and h (n, H):
//
//	r = σ(a_r + hh_r);  z = σ(a_z + hh_z);  nv = tanh(a_n + r ⊙ hh_n)
//	a ← r, z, nv (in place);  hn = hh_n;  h = (1 − z) ⊙ nv + z ⊙ h_{t−1}
func (q *Queue) GRUForward(a, hh, hprev, hn, h uintptr, n, hidden int) {
	q.b.run(kGRUForward, n*hidden, ptr(a), ptr(hh), ptr(hprev), ptr(hn), ptr(h), i32(n), i32(hidden))
}

// GRUBackward is GRUForward's gradient: from its a and hn, hprev (0 at the
// first step) and dh = dL/dh_t (n, H), it writes the gradients of the
// input half dzi and of the hidden half dzh (n, 3H), and adds dh·z into
// dprev = dL/dh_{t−1} unless dprev is 0:
//
//	dn = dh·(1 − z)·(1 − nv²);  dz = dh·(h_{t−1} − nv)·z(1 − z);  dr = dn·hn·r(1 − r)
//	dzi = dr, dz, dn;  dzh = dr, dz, dn·r
func (q *Queue) GRUBackward(a, hn, hprev, dh, dprev, dzi, dzh uintptr, n, hidden int) {
	q.b.run(kGRUBackward, n*hidden, ptr(a), ptr(hn), ptr(hprev), ptr(dh), ptr(dprev), ptr(dzi), ptr(dzh), i32(n), i32(hidden))
}
