package tensor

import "math"

// Elementwise kernels and pooling are memory-bound; above this many
// elements they are split across the pool.
const elemMinParallel = 1 << 15

// Operations elemArgs can split across the pool.
const (
	opRelu = iota
	opReluBackward
	opTranspose021
	opMaxPool
	opMaxPoolBackward
)

// elemArgs carries one memory-bound kernel call across the pool.
type elemArgs struct {
	op      int
	a, b, c []float32
	idx     []int32
	off     []int32 // MaxPool: window offsets for maxPoolGather, or nil
	d0, d1  int     // Transpose021: a, b (c is d2); pools: planes
	d2      int
	pool    PoolGeom
	parts   int
	wg      partsLeft
}

func (e *elemArgs) run(part int) {
	switch e.op {
	case opRelu:
		lo, hi := split(len(e.a), e.parts, 64, part)
		relu(e.a[lo:hi], e.b[lo:hi])
	case opReluBackward:
		lo, hi := split(len(e.a), e.parts, 64, part)
		reluBackward(e.a[lo:hi], e.b[lo:hi], e.c[lo:hi])
	case opTranspose021:
		lo, hi := split(e.d0, e.parts, 1, part)
		transpose021(e.a, e.b, e.d0, e.d1, e.d2, lo, hi)
	case opMaxPool:
		lo, hi := split(e.d0, e.parts, 1, part)
		if e.off != nil {
			lo = maxPoolGather(e.pool, e.a, e.b, e.idx, e.off, lo, hi)
		}
		maxPool(e.pool, e.a, e.b, e.idx, lo, hi)
	case opMaxPoolBackward:
		lo, hi := split(e.d0, e.parts, 1, part)
		maxPoolBackward(e.pool, e.a, e.idx, e.b, lo, hi)
	}
}

// elem runs the kernel set up by fill across the pool when work is large
// enough, else here. The arguments live in a free-list struct, so a call
// allocates nothing.
func (g *GoBackend) elem(work, units int, fill func(a *elemArgs)) {
	a := g.pool.elemArgs.get()
	fill(a)
	a.parts = 1
	if g.pool.threads > 1 && work >= elemMinParallel {
		a.parts = max(1, min(g.pool.threads, units))
	}
	g.pool.run(a, a.parts, &a.wg)
	a.a, a.b, a.c, a.idx, a.off = nil, nil, nil, nil, nil
	g.pool.elemArgs.put(a)
}

func relu(x, y []float32) {
	y = y[:len(x)]
	if hasAVX2FMA && len(x) >= 8 && &x[0] == &y[0] {
		n := len(x) &^ 7
		reluAVX(&x[0], n)
		x, y = x[n:], y[n:]
	}
	for i, v := range x {
		y[i] = max(v, 0)
	}
}

func reluBackward(dy, y, dx []float32) {
	y, dx = y[:len(dy)], dx[:len(dy)]
	if hasAVX2FMA && len(dy) >= 8 {
		n := len(dy) &^ 7
		reluBackwardAVX(&dy[0], &y[0], &dx[0], n)
		dy, y, dx = dy[n:], y[n:], dx[n:]
	}
	for i, v := range dy {
		if y[i] <= 0 {
			v = 0
		}
		dx[i] = v
	}
}

// transpose021 writes rows [lo, hi) of src's first axis.
func transpose021(src, dst []float32, a, b, c, lo, hi int) {
	for i := lo; i < hi; i++ {
		for j := 0; j < b; j++ {
			copy(dst[(j*a+i)*c:(j*a+i+1)*c], src[(i*b+j)*c:(i*b+j+1)*c])
		}
	}
}

var negInf = float32(math.Inf(-1))

// maxPool pools planes [lo, hi), with a fast path for 2×2 windows of
// stride 2.
func maxPool(g PoolGeom, x, y []float32, idx []int32, lo, hi int) {
	oh, ow := g.OH(), g.OW()
	hw := g.H * g.W
	// Without idx (inference) the 2×2 path is branch-free: AVX2 VMAXPS, or
	// the max builtin (MINSS/MAXSS). A NaN in a window may or may not reach
	// the output, where the general path keeps the first value that
	// compares larger.
	if g.KH == 2 && g.KW == 2 && g.SH == 2 && g.SW == 2 && idx == nil {
		for p := lo; p < hi; p++ {
			base := p * hw
			for i := 0; i < oh; i++ {
				r0 := x[base+2*i*g.W : base+(2*i+1)*g.W]
				r1 := x[base+(2*i+1)*g.W : base+(2*i+2)*g.W]
				yo := y[(p*oh+i)*ow : (p*oh+i+1)*ow]
				if hasAVX2FMA && ow >= 8 {
					n := ow &^ 7
					_, _ = r0[2*n-1], r1[2*n-1]
					maxPool2x2AVX(&yo[0], &r0[0], &r1[0], n)
					yo, r0, r1 = yo[n:], r0[2*n:], r1[2*n:]
				}
				for j := range yo {
					k := 2 * j
					yo[j] = max(max(r0[k], r0[k+1]), max(r1[k], r1[k+1]))
				}
			}
		}
		return
	}
	if g.KH == 2 && g.KW == 2 && g.SH == 2 && g.SW == 2 {
		for p := lo; p < hi; p++ {
			base := p * hw
			for i := 0; i < oh; i++ {
				r0 := x[base+2*i*g.W : base+(2*i+1)*g.W]
				r1 := x[base+(2*i+1)*g.W : base+(2*i+2)*g.W]
				o := (p*oh + i) * ow
				yo, io := y[o:o+ow], idx[o:o+ow]
				j0 := 0
				if hasAVX2FMA {
					_, _ = r0[2*ow-1], r1[2*ow-1]
					maxPool2x2IdxAVX(&yo[0], &io[0], &r0[0], &r1[0], ow, int32(base+2*i*g.W), int32(g.W), &poolTailMasks[ow%8][0])
					j0 = ow
				}
				for j := j0; j < len(yo); j++ {
					k := 2 * j
					best, at := r0[k], base+2*i*g.W+k
					if v := r0[k+1]; v > best {
						best, at = v, at+1
					}
					if v := r1[k]; v > best {
						best, at = v, base+(2*i+1)*g.W+k
					}
					if v := r1[k+1]; v > best {
						best, at = v, base+(2*i+1)*g.W+k+1
					}
					yo[j], io[j] = best, int32(at)
				}
			}
		}
		return
	}
	for p := lo; p < hi; p++ {
		base := p * hw
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				at := base + i*g.SH*g.W + j*g.SW
				best := x[at]
				for kh := 0; kh < g.KH; kh++ {
					row := base + (i*g.SH+kh)*g.W + j*g.SW
					for kw := 0; kw < g.KW; kw++ {
						if v := x[row+kw]; v > best {
							best, at = v, row+kw
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

// gatherPool reports whether MaxPool with indices takes maxPoolGather for
// g: 2×2 windows of stride 2 whose output rows are under 8 wide, where the
// row kernel would run one masked group per row.
func gatherPool(g PoolGeom) bool {
	return hasAVX2FMA && g.KH == 2 && g.KW == 2 && g.SH == 2 && g.SW == 2 && g.OW() < 8
}

// poolGroup returns how many planes maxPoolGather takes at once: the
// fewest whose outputs are a multiple of 8.
func poolGroup(g PoolGeom) int {
	ohw := g.OH() * g.OW()
	k := 8
	for ohw%2 == 0 && k > 1 {
		ohw, k = ohw/2, k/2
	}
	return k
}

// poolOffsets fills off (poolGroup(g)·OH·OW) with the flat offset, from the
// first plane of a group, of each output's window.
func poolOffsets(g PoolGeom, off []int32) {
	hw, oh, ow := g.H*g.W, g.OH(), g.OW()
	k := 0
	for q := 0; q < len(off)/(oh*ow); q++ {
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				off[k] = int32(q*hw + i*g.SH*g.W + j*g.SW)
				k++
			}
		}
	}
}

// maxPoolGather pools the planes [lo, hi) that fill whole groups of
// poolGroup(g) planes with the gathering kernel and returns where it
// stopped; off is poolOffsets's table.
func maxPoolGather(g PoolGeom, x, y []float32, idx []int32, off []int32, lo, hi int) int {
	hw := g.H * g.W
	ohw := g.OH() * g.OW()
	k := len(off) / ohw
	for ; lo+k <= hi; lo += k {
		_, _, _ = x[(lo+k)*hw-1], y[(lo+k)*ohw-1], idx[(lo+k)*ohw-1]
		maxPool2x2GatherAVX(&y[lo*ohw], &idx[lo*ohw], &x[0], &off[0], len(off), int32(lo*hw), int32(g.W))
	}
	return lo
}

// maxPoolBackward writes planes [lo, hi) of dx. Windows never cross planes,
// so parts write disjoint planes.
func maxPoolBackward(g PoolGeom, dy []float32, idx []int32, dx []float32, lo, hi int) {
	hw, ohw := g.H*g.W, g.OH()*g.OW()
	if hasAVX2FMA && g.KH == 2 && g.KW == 2 && g.SH == 2 && g.SW == 2 && g.OW() >= 8 {
		// Each pixel is in at most one window: every window's four pixels
		// are written, dy at its maximum, then the row and column that no
		// window covers (odd H, odd W) are zeroed. No clearing pass. (Rows
		// under 8 windows are left to the loop below: a row's masked
		// stores cost more than clearing.)
		oh, ow := g.OH(), g.OW()
		n := ow &^ 7
		for p := lo; p < hi; p++ {
			base := p * hw
			for i := 0; i < oh; i++ {
				r0 := dx[base+2*i*g.W : base+(2*i+1)*g.W]
				r1 := dx[base+(2*i+1)*g.W : base+(2*i+2)*g.W]
				o := (p*oh + i) * ow
				_, _, _, _ = r0[2*ow-1], r1[2*ow-1], dy[o+ow-1], idx[o+ow-1]
				maxPoolBackward2x2AVX(&r0[0], &r1[0], &dy[o], &idx[o], n, int32(base+2*i*g.W), int32(g.W), &poolTailMasks[0][0])
				// The last ow − n windows: masked stores would cost more.
				for j := n; j < ow; j++ {
					r0[2*j], r0[2*j+1], r1[2*j], r1[2*j+1] = 0, 0, 0, 0
					dx[idx[o+j]] = dy[o+j]
				}
				if 2*ow < g.W {
					r0[g.W-1], r1[g.W-1] = 0, 0
				}
			}
			if 2*oh < g.H {
				clear(dx[base+(g.H-1)*g.W : base+hw])
			}
		}
		return
	}
	clear(dx[lo*hw : hi*hw])
	for o := lo * ohw; o < hi*ohw; o++ {
		dx[idx[o]] += dy[o]
	}
}
