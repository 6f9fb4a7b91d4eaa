package tensor

import "math"

// Reference is the naive backend: one plain loop nest per kernel, single
// threaded, accumulating in float64 where a kernel reduces. It is the oracle
// the correctness suite checks every other backend against, and the
// documentation of what each kernel computes.
var Reference Backend = referenceBackend{}

type referenceBackend struct{}

func (referenceBackend) Name() string { return "reference" }
func (referenceBackend) Threads() int { return 1 }

// Gemm is, for every i < m, j < n:
//
//	C[i,j] = alpha·Σ_p opA[i,p]·opB[p,j] + beta·C[i,j]
func (referenceBackend) Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			v := alpha * float32(s)
			if beta != 0 {
				v += beta * c[i*ldc+j]
			}
			c[i*ldc+j] = v
		}
	}
}

func (referenceBackend) Im2Col(g ConvGeom, n int, x, col []float32) {
	oh, ow := g.OH(), g.OW()
	ld := n * oh * ow
	for c := 0; c < g.C; c++ {
		for kh := 0; kh < g.KH; kh++ {
			for kw := 0; kw < g.KW; kw++ {
				row := (c*g.KH+kh)*g.KW + kw
				for i := 0; i < n; i++ {
					for y := 0; y < oh; y++ {
						for xo := 0; xo < ow; xo++ {
							ih, iw := y*g.SH+kh-g.PH, xo*g.SW+kw-g.PW
							var v float32
							if ih >= 0 && ih < g.H && iw >= 0 && iw < g.W {
								v = x[((i*g.C+c)*g.H+ih)*g.W+iw]
							}
							col[row*ld+(i*oh+y)*ow+xo] = v
						}
					}
				}
			}
		}
	}
}

// Pack does nothing: the reference kernels read W itself.
func (referenceBackend) Pack(*Packed) {}

// GemmPacked is Gemm with B = Wᵀ.
func (r referenceBackend) GemmPacked(m int, alpha float32, a []float32, lda int, w *Packed, beta float32, c []float32, ldc int) {
	r.Gemm(false, true, m, w.Rows, w.K, alpha, a, lda, w.W, w.K, beta, c, ldc)
}

// Conv2D is the direct convolution, one output at a time.
func (referenceBackend) Conv2D(g ConvGeom, n int, x []float32, pw *Packed, bias []float32, relu bool, y []float32) {
	oh, ow := g.OH(), g.OW()
	oc, w := pw.Rows, pw.W
	for i := 0; i < n; i++ {
		for o := 0; o < oc; o++ {
			for yo := 0; yo < oh; yo++ {
				for xo := 0; xo < ow; xo++ {
					var s float64
					if bias != nil {
						s = float64(bias[o])
					}
					for c := 0; c < g.C; c++ {
						for kh := 0; kh < g.KH; kh++ {
							for kw := 0; kw < g.KW; kw++ {
								ih, iw := yo*g.SH+kh-g.PH, xo*g.SW+kw-g.PW
								if ih < 0 || ih >= g.H || iw < 0 || iw >= g.W {
									continue
								}
								s += float64(w[o*g.Rows()+(c*g.KH+kh)*g.KW+kw]) * float64(x[((i*g.C+c)*g.H+ih)*g.W+iw])
							}
						}
					}
					v := float32(s)
					if relu {
						v = max(v, 0)
					}
					y[((i*oc+o)*oh+yo)*ow+xo] = v
				}
			}
		}
	}
}

// Conv2DBackward is the backward pass one image at a time, with the
// reference Im2Col, GEMM and Col2Im.
func (r referenceBackend) Conv2DBackward(g ConvGeom, n int, x, w, dy, dw, db, dx []float32) {
	oc, rows, p := len(w)/g.Rows(), g.Rows(), g.OH()*g.OW()
	col, dcol := make([]float32, rows*p), make([]float32, rows*p)
	size := g.C * g.H * g.W
	for i := 0; i < n; i++ {
		dyi := dy[i*oc*p : (i+1)*oc*p]
		if dw != nil || db != nil {
			r.Im2Col(g, 1, x[i*size:(i+1)*size], col)
			r.Gemm(false, true, oc, rows, p, 1, dyi, p, col, p, 1, dw, rows)
			r.SumBias(dyi, db, 1, p)
		}
		if dx != nil {
			r.Gemm(true, false, rows, p, oc, 1, w, rows, dyi, p, 0, dcol, p)
			r.Col2Im(g, 1, dcol, dx[i*size:(i+1)*size])
		}
	}
}

func (referenceBackend) Col2Im(g ConvGeom, n int, col, x []float32) {
	clear(x[:n*g.C*g.H*g.W])
	oh, ow := g.OH(), g.OW()
	ld := n * oh * ow
	for c := 0; c < g.C; c++ {
		for kh := 0; kh < g.KH; kh++ {
			for kw := 0; kw < g.KW; kw++ {
				row := (c*g.KH+kh)*g.KW + kw
				for i := 0; i < n; i++ {
					for y := 0; y < oh; y++ {
						for xo := 0; xo < ow; xo++ {
							ih, iw := y*g.SH+kh-g.PH, xo*g.SW+kw-g.PW
							if ih >= 0 && ih < g.H && iw >= 0 && iw < g.W {
								x[((i*g.C+c)*g.H+ih)*g.W+iw] += col[row*ld+(i*oh+y)*ow+xo]
							}
						}
					}
				}
			}
		}
	}
}

func (referenceBackend) AddBias(x, bias []float32, outer, inner int) {
	for o := 0; o < outer; o++ {
		for j, bv := range bias {
			for i := 0; i < inner; i++ {
				x[(o*len(bias)+j)*inner+i] += bv
			}
		}
	}
}

func (referenceBackend) SumBias(dy, db []float32, outer, inner int) {
	for j := range db {
		var s float64
		for o := 0; o < outer; o++ {
			for i := 0; i < inner; i++ {
				s += float64(dy[(o*len(db)+j)*inner+i])
			}
		}
		db[j] += float32(s)
	}
}

func (referenceBackend) Transpose021(src, dst []float32, a, b, c int) {
	for i := 0; i < a; i++ {
		for j := 0; j < b; j++ {
			for k := 0; k < c; k++ {
				dst[(j*a+i)*c+k] = src[(i*b+j)*c+k]
			}
		}
	}
}

func (referenceBackend) Relu(x, y []float32) {
	for i, v := range x {
		y[i] = max(v, 0)
	}
}

func (referenceBackend) ReluBackward(dy, y, dx []float32) {
	for i := range dy {
		if y[i] > 0 {
			dx[i] = dy[i]
		} else {
			dx[i] = 0
		}
	}
}

func (referenceBackend) MaxPool(g PoolGeom, planes int, x, y []float32, idx []int32) {
	oh, ow := g.OH(), g.OW()
	for p := 0; p < planes; p++ {
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				best, at := float32(math.Inf(-1)), -1
				for kh := 0; kh < g.KH; kh++ {
					for kw := 0; kw < g.KW; kw++ {
						k := (p*g.H+i*g.SH+kh)*g.W + j*g.SW + kw
						if at < 0 || x[k] > best {
							best, at = x[k], k
						}
					}
				}
				o := (p*oh+i)*ow + j
				y[o] = best
				if idx != nil {
					idx[o] = int32(at)
				}
			}
		}
	}
}

func (referenceBackend) MaxPoolBackward(g PoolGeom, planes int, dy []float32, idx []int32, dx []float32) {
	clear(dx[:planes*g.H*g.W])
	for o := 0; o < planes*g.OH()*g.OW(); o++ {
		dx[idx[o]] += dy[o]
	}
}

func (referenceBackend) Softmax(x, y []float32, rows, cols int) {
	for r := 0; r < rows; r++ {
		row := x[r*cols : (r+1)*cols]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, float64(v))
		}
		var s float64
		for _, v := range row {
			s += math.Exp(float64(v) - m)
		}
		for j, v := range row {
			y[r*cols+j] = float32(math.Exp(float64(v)-m) / s)
		}
	}
}

func (referenceBackend) Argmax(x []float32, rows, cols int, out []int32) {
	for r := 0; r < rows; r++ {
		best := 0
		for j := 1; j < cols; j++ {
			if x[r*cols+j] > x[r*cols+best] {
				best = j
			}
		}
		out[r] = int32(best)
	}
}

func (referenceBackend) Sum(x []float32) float32 {
	var s float64
	for _, v := range x {
		s += float64(v)
	}
	return float32(s)
}

func (referenceBackend) Dot(x, y []float32) float32 {
	var s float64
	for i := range x {
		s += float64(x[i]) * float64(y[i])
	}
	return float32(s)
}

func (referenceBackend) Axpy(alpha float32, x, y []float32) {
	for i := range x {
		y[i] += alpha * x[i]
	}
}

func (referenceBackend) Scale(alpha float32, x []float32) {
	for i := range x {
		x[i] *= alpha
	}
}

func (referenceBackend) Sigmoid(x, y []float32) {
	for i, v := range x {
		y[i] = float32(1 / (1 + math.Exp(-float64(v))))
	}
}

func (referenceBackend) Tanh(x, y []float32) {
	for i, v := range x {
		y[i] = float32(math.Tanh(float64(v)))
	}
}
