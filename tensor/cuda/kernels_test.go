package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/tensor"
)

// The kernels a device-resident training step adds to tensor.Backend's
// (optimizer updates, LSTM and GRU steps, the softmax cross-entropy),
// run on the host engine against package nn's code or float64 loops.

func randFloats(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// onDevice runs f as one Backend call (the slots and launches of f are
// queued between enter and leave).
func onDevice(b *Backend, f func()) {
	b.enter()
	defer b.leave()
	f()
}

func assertNear(t *testing.T, name string, got, want []float32, tol float64) {
	t.Helper()
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) || math.Abs(g-w) > tol*(1+math.Abs(w)) {
			t.Fatalf("%s: [%d] = %g, want %g", name, i, g, w)
		}
	}
}

// Odd sizes: partial last blocks, one thread, several blocks.
var kernelSizes = []int{1, 7, 255, 257, 1000}

func TestOptimizerKernels(t *testing.T) {
	b := newHostBackend(t)
	r := rand.New(rand.NewPCG(1, 2))
	wd := 0.01
	const lr = 0.05
	specs := []nn.OptimizerSpec{
		{Type: "sgd", LR: lr},
		{Type: "sgd", LR: lr, Momentum: 0.9, WeightDecay: &wd},
		{Type: "sgd", LR: lr, Momentum: 0.9, Nesterov: true},
		{Type: "sgd", LR: lr, Momentum: 0.8, Dampening: 0.1},
		{Type: "adam", LR: lr},
		{Type: "adam", LR: lr, WeightDecay: &wd},
		{Type: "adamw", LR: lr},
	}
	for _, spec := range specs {
		for _, n := range kernelSizes {
			name := fmt.Sprintf("%+v n=%d", spec, n)
			opt, err := nn.NewOptimizer(spec, n)
			if err != nil {
				t.Fatal(err)
			}
			params := randFloats(r, n)
			got := append([]float32(nil), params...)
			state, _ := opt.State()
			gotState := map[string][]float32{}
			for k := range state {
				gotState[k] = make([]float32, n)
			}
			for step := 1; step <= 3; step++ {
				grads := randFloats(r, n)
				opt.Step(params, grads, lr)
				onDevice(b, func() {
					pp, pg := b.up(sA, got), b.up(sB, grads)
					switch spec.Type {
					case "sgd":
						s := opt.(*nn.SGD)
						var pbuf uintptr
						if buf, ok := gotState["momentum"]; ok {
							pbuf = b.up(sC, buf)
						}
						b.run(kSGD, n, ptr(pp), ptr(pg), ptr(pbuf), i32(n), f32(lr), f32(float32(s.WeightDecay)),
							f32(float32(s.Momentum)), f32(float32(1-s.Dampening)), flag(step == 1), flag(s.Nesterov))
						if pbuf != 0 {
							b.down(gotState["momentum"], sC)
						}
					default:
						c := opt.(*nn.Adam).Args(float64(lr)) // opt.Step advanced its step count to step
						pm, pv := b.up(sC, gotState["exp_avg"]), b.up(sD, gotState["exp_avg_sq"])
						b.run(kAdam, n, ptr(pp), ptr(pg), ptr(pm), ptr(pv), i32(n), f32(c.StepSize), f32(c.InvSqrtBC2),
							f32(c.Beta1), f32(c.OneMinusB1), f32(c.Beta2), f32(c.OneMinusB2), f32(c.Eps), f32(c.WeightDecay),
							f32(c.Decay), flag(c.Decoupled))
						b.down(gotState["exp_avg"], sC)
						b.down(gotState["exp_avg_sq"], sD)
					}
					b.down(got, sA)
				})
			}
			// The same float32 operations in the same order: equal, up to
			// a platform that fuses multiply-adds in the Go code.
			assertNear(t, name+" params", got, params, 1e-6)
			for k, v := range state {
				assertNear(t, name+" "+k, gotState[k], v, 1e-6)
			}
		}
	}
}

func sigmoid64(x float32) float64 { return 1 / (1 + math.Exp(-float64(x))) }

func TestLSTMKernels(t *testing.T) {
	b := newHostBackend(t)
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 3, 17} {
		for _, h := range []int{1, 5, 64} {
			for _, first := range []bool{true, false} {
				name := fmt.Sprintf("n=%d H=%d first=%v", n, h, first)
				pre, cprev := randFloats(r, n*4*h), randFloats(r, n*h)
				act, c, tc, hs := make([]float32, n*4*h), make([]float32, n*h), make([]float32, n*h), make([]float32, n*h)
				onDevice(b, func() {
					pa, pcp := b.up(sA, pre), b.up(sB, cprev)
					if first {
						pcp = 0
					}
					pc, ptc, ph := b.scratch(sC, 4*n*h), b.scratch(sD, 4*n*h), b.scratch(sE, 4*n*h)
					b.run(kLSTMForward, n*h, ptr(pa), ptr(pcp), ptr(pc), ptr(ptc), ptr(ph), i32(n), i32(h))
					b.down(act, sA)
					b.down(c, sC)
					b.down(tc, sD)
					b.down(hs, sE)
				})
				wantAct, wantC, wantH := make([]float32, n*4*h), make([]float32, n*h), make([]float32, n*h)
				for i := range n {
					for j := range h {
						row := pre[i*4*h:]
						ig, fg := sigmoid64(row[j]), sigmoid64(row[h+j])
						gg, og := math.Tanh(float64(row[2*h+j])), sigmoid64(row[3*h+j])
						cv := ig * gg
						if !first {
							cv += fg * float64(cprev[i*h+j])
						}
						for q, v := range []float64{ig, fg, gg, og} {
							wantAct[i*4*h+q*h+j] = float32(v)
						}
						wantC[i*h+j], wantH[i*h+j] = float32(cv), float32(og*math.Tanh(cv))
					}
				}
				assertNear(t, "lstm forward act "+name, act, wantAct, 1e-6)
				assertNear(t, "lstm forward c "+name, c, wantC, 1e-6)
				assertNear(t, "lstm forward h "+name, hs, wantH, 1e-6)

				// Backward from the forward's own activations: nn's formulas.
				dh, dc := randFloats(r, n*h), randFloats(r, n*h)
				dz, gotDc := make([]float32, n*4*h), make([]float32, n*h)
				onDevice(b, func() {
					pa, ptc, pcp := b.up(sA, act), b.up(sB, tc), b.up(sC, cprev)
					if first {
						pcp = 0
					}
					pdh, pdc, pdz := b.up(sD, dh), b.up(sE, dc), b.scratch(sTmp, 4*n*4*h)
					b.run(kLSTMBackward, n*h, ptr(pa), ptr(ptc), ptr(pcp), ptr(pdh), ptr(pdc), ptr(pdz), i32(n), i32(h))
					b.down(dz, sTmp)
					b.down(gotDc, sE)
				})
				wantDz, wantDc := make([]float32, n*4*h), make([]float32, n*h)
				for i := range n {
					for j := range h {
						row := act[i*4*h:]
						ig, fg, gg, og := row[j], row[h+j], row[2*h+j], row[3*h+j]
						d, tcv := dh[i*h+j], tc[i*h+j]
						dcv := d*og*(1-tcv*tcv) + dc[i*h+j]
						var cp float32
						if !first {
							cp = cprev[i*h+j]
						}
						wantDz[i*4*h+j] = dcv * gg * ig * (1 - ig)
						wantDz[i*4*h+h+j] = dcv * cp * fg * (1 - fg)
						wantDz[i*4*h+2*h+j] = dcv * ig * (1 - gg*gg)
						wantDz[i*4*h+3*h+j] = d * tcv * og * (1 - og)
						wantDc[i*h+j] = dcv * fg
					}
				}
				assertNear(t, "lstm backward dz "+name, dz, wantDz, 1e-6)
				assertNear(t, "lstm backward dc "+name, gotDc, wantDc, 1e-6)
			}
		}
	}
}

func TestGRUKernels(t *testing.T) {
	b := newHostBackend(t)
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 3, 17} {
		for _, h := range []int{1, 5, 64} {
			for _, first := range []bool{true, false} {
				name := fmt.Sprintf("n=%d H=%d first=%v", n, h, first)
				pre, hh, hprev := randFloats(r, n*3*h), randFloats(r, n*3*h), randFloats(r, n*h)
				act, hn, hs := make([]float32, n*3*h), make([]float32, n*h), make([]float32, n*h)
				onDevice(b, func() {
					pa, phh, php := b.up(sA, pre), b.up(sB, hh), b.up(sC, hprev)
					if first {
						php = 0
					}
					phn, ph := b.scratch(sD, 4*n*h), b.scratch(sE, 4*n*h)
					b.run(kGRUForward, n*h, ptr(pa), ptr(phh), ptr(php), ptr(phn), ptr(ph), i32(n), i32(h))
					b.down(act, sA)
					b.down(hn, sD)
					b.down(hs, sE)
				})
				wantAct, wantHn, wantH := make([]float32, n*3*h), make([]float32, n*h), make([]float32, n*h)
				for i := range n {
					for j := range h {
						row, hrow := pre[i*3*h:], hh[i*3*h:]
						rg := sigmoid64(row[j] + hrow[j])
						zg := sigmoid64(row[h+j] + hrow[h+j])
						nv := math.Tanh(float64(row[2*h+j]) + rg*float64(hrow[2*h+j]))
						hv := (1 - zg) * nv
						if !first {
							hv += zg * float64(hprev[i*h+j])
						}
						wantAct[i*3*h+j], wantAct[i*3*h+h+j], wantAct[i*3*h+2*h+j] = float32(rg), float32(zg), float32(nv)
						wantHn[i*h+j], wantH[i*h+j] = hrow[2*h+j], float32(hv)
					}
				}
				assertNear(t, "gru forward act "+name, act, wantAct, 1e-6)
				assertNear(t, "gru forward hn "+name, hn, wantHn, 0)
				assertNear(t, "gru forward h "+name, hs, wantH, 1e-6)

				dh, dprev0 := randFloats(r, n*h), randFloats(r, n*h)
				dzi, dzh, dprev := make([]float32, n*3*h), make([]float32, n*3*h), make([]float32, n*h)
				onDevice(b, func() {
					pa, phn, php := b.up(sA, act), b.up(sB, hn), b.up(sC, hprev)
					if first {
						php = 0
					}
					pdh, pdp := b.up(sD, dh), b.up(sE, dprev0)
					pzi, pzh := b.scratch(sCol, 4*n*3*h), b.scratch(sTmp, 4*n*3*h)
					b.run(kGRUBackward, n*h, ptr(pa), ptr(phn), ptr(php), ptr(pdh), ptr(pdp), ptr(pzi), ptr(pzh), i32(n), i32(h))
					b.down(dzi, sCol)
					b.down(dzh, sTmp)
					b.down(dprev, sE)
				})
				wantDzi, wantDzh, wantDprev := make([]float32, n*3*h), make([]float32, n*3*h), append([]float32(nil), dprev0...)
				for i := range n {
					for j := range h {
						row := act[i*3*h:]
						rg, zg, nv := row[j], row[h+j], row[2*h+j]
						d := dh[i*h+j]
						var hp float32
						if !first {
							hp = hprev[i*h+j]
							wantDprev[i*h+j] += d * zg
						}
						dn := d * (1 - zg) * (1 - nv*nv)
						dz := d * (hp - nv) * zg * (1 - zg)
						dr := dn * hn[i*h+j] * rg * (1 - rg)
						o := i * 3 * h
						wantDzi[o+j], wantDzi[o+h+j], wantDzi[o+2*h+j] = dr, dz, dn
						wantDzh[o+j], wantDzh[o+h+j], wantDzh[o+2*h+j] = dr, dz, dn*rg
					}
				}
				assertNear(t, "gru backward dzi "+name, dzi, wantDzi, 1e-6)
				assertNear(t, "gru backward dzh "+name, dzh, wantDzh, 1e-6)
				assertNear(t, "gru backward dprev "+name, dprev, wantDprev, 1e-6)
			}
		}
	}
}

func TestSoftmaxCrossEntropyKernels(t *testing.T) {
	b := newHostBackend(t)
	r := rand.New(rand.NewPCG(7, 8))
	for _, rows := range []int{1, 3, 257} {
		for _, cols := range []int{1, 2, 10, 33} {
			name := fmt.Sprintf("%dx%d", rows, cols)
			x := randFloats(r, rows*cols)
			x[0] = 80
			labels := make([]int32, rows)
			for i := range labels {
				labels[i] = int32(r.IntN(cols))
			}
			if rows > 2 {
				labels[1] = int32(cols) // out of range: infinite loss
			}
			probs, loss, dx := make([]float32, rows*cols), make([]float32, rows), make([]float32, rows*cols)
			scale := 1 / float32(rows)
			onDevice(b, func() {
				px, pl := b.up(sA, x), b.upInt(sB, labels)
				pp, ploss, pdx := b.scratch(sC, 4*rows*cols), b.scratch(sD, 4*rows), b.scratch(sE, 4*rows*cols)
				b.run(kSoftmaxXent, rows, ptr(px), ptr(pl), ptr(pp), ptr(ploss), i32(rows), i32(cols))
				b.run(kSoftmaxXentBackward, rows*cols, ptr(pp), ptr(pl), ptr(pdx), i32(rows), i32(cols), f32(scale))
				b.down(probs, sC)
				b.down(loss, sD)
				b.down(dx, sE)
			})
			wantP := make([]float32, rows*cols)
			tensor.Reference.Softmax(x, wantP, rows, cols)
			assertNear(t, "probs "+name, probs, wantP, 1e-6)
			for i, y := range labels {
				row := x[i*cols : (i+1)*cols]
				want := math.Inf(1)
				if int(y) < cols {
					mx := math.Inf(-1)
					for _, v := range row {
						mx = math.Max(mx, float64(v))
					}
					var s float64
					for _, v := range row {
						s += math.Exp(float64(v) - mx)
					}
					want = mx + math.Log(s) - float64(row[y])
				}
				if g := float64(loss[i]); !(math.IsInf(want, 1) && math.IsInf(g, 1)) && math.Abs(g-want) > 1e-5*(1+math.Abs(want)) {
					t.Fatalf("loss %s row %d = %g, want %g", name, i, g, want)
				}
				for j := range cols {
					w := wantP[i*cols+j]
					if int(y) == j {
						w--
					}
					if g := dx[i*cols+j]; math.Abs(float64(g-w*scale)) > 1e-6 {
						t.Fatalf("dx %s [%d,%d] = %g, want %g", name, i, j, g, w*scale)
					}
				}
			}
		}
	}
}

// TestMathFunctions checks the kernels' exp and log (Cephes, written in
// maas_cuda.h since libdevice is not linked) over a sweep of float32s,
// through the activation kernels and the cross-entropy loss.
func TestMathFunctions(t *testing.T) {
	b := newHostBackend(t)
	var x []float32
	for v := -100.0; v <= 100; v += 0.0137 {
		x = append(x, float32(v))
	}
	x = append(x, 0, 1e-30, -1e-30, 1e-38, float32(math.Inf(1)), float32(math.Inf(-1)))
	sig, th := make([]float32, len(x)), make([]float32, len(x))
	b.Sigmoid(x, sig)
	b.Tanh(x, th)
	for i, v := range x {
		if want := sigmoid64(v); math.Abs(float64(sig[i])-want) > 2e-7 {
			t.Fatalf("sigmoid(%g) = %g, want %g", v, sig[i], want)
		}
		want := math.Tanh(float64(v))
		if err := math.Abs(float64(th[i]) - want); err > 2e-7 && err > 2e-7*math.Abs(want) {
			t.Fatalf("tanh(%g) = %g, want %g", v, th[i], want)
		}
	}
	// log through the loss of one-column rows: logsumexp(x) − x[0] = 0;
	// and of two equal logits: log 2.
	two := []float32{3, 3, -50, -50, 1e-3, 1e-3}
	probs, loss := make([]float32, 6), make([]float32, 3)
	onDevice(b, func() {
		px, pl := b.up(sA, two), b.upInt(sB, []int32{0, 1, 0})
		pp, ploss := b.scratch(sC, 24), b.scratch(sD, 12)
		b.run(kSoftmaxXent, 3, ptr(px), ptr(pl), ptr(pp), ptr(ploss), i32(3), i32(2))
		b.down(loss, sD)
		b.down(probs, sC)
	})
	for i, l := range loss {
		if math.Abs(float64(l)-math.Ln2) > 1e-7 {
			t.Fatalf("loss row %d = %.9g, want ln 2", i, l)
		}
	}
	// Rows (0, d), label 0: the loss is log(1 + exp(d)), which takes log
	// across float32's exponents.
	var rows []float32
	for d := -20.0; d <= 85; d += 0.031 {
		rows = append(rows, 0, float32(d))
	}
	n := len(rows) / 2
	loss = make([]float32, n)
	onDevice(b, func() {
		px, pl := b.up(sA, rows), b.upInt(sB, make([]int32, n))
		pp, ploss := b.scratch(sC, 4*2*n), b.scratch(sD, 4*n)
		b.run(kSoftmaxXent, n, ptr(px), ptr(pl), ptr(pp), ptr(ploss), i32(n), i32(2))
		b.down(loss, sD)
	})
	for i, l := range loss {
		d := float64(rows[2*i+1])
		want := math.Log1p(math.Exp(d))
		if math.Abs(float64(l)-want) > 2e-7*(1+want) {
			t.Fatalf("loss of (0, %g) = %.9g, want %.9g", d, l, want)
		}
	}
}
