package tensortest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/maas-ml/maas/tensor"
)

var convGeoms = []tensor.ConvGeom{
	{C: 1, H: 5, W: 5, KH: 3, KW: 3, SH: 1, SW: 1, PH: 1, PW: 1},
	{C: 2, H: 7, W: 6, KH: 3, KW: 2, SH: 2, SW: 1, PH: 0, PW: 1},
	{C: 3, H: 8, W: 9, KH: 5, KW: 5, SH: 2, SW: 3, PH: 2, PW: 2},
	{C: 4, H: 4, W: 4, KH: 1, KW: 1, SH: 1, SW: 1},
	{C: 2, H: 3, W: 3, KH: 3, KW: 3, SH: 1, SW: 1, PH: 2, PW: 2},
	{C: 5, H: 14, W: 14, KH: 3, KW: 3, SH: 1, SW: 1, PH: 1, PW: 1},
	{C: 1, H: 1, W: 1, KH: 1, KW: 1, SH: 1, SW: 1},
	// Stride 1 with output rows as wide as the input's (the shifted-plane
	// paths): kernels wider than the image, padding wider than a row, output
	// rows that read only padding, more or fewer output rows than input rows.
	{C: 2, H: 6, W: 4, KH: 1, KW: 3, SH: 1, SW: 1, PH: 0, PW: 1},
	{C: 1, H: 2, W: 1, KH: 3, KW: 3, SH: 1, SW: 1, PH: 1, PW: 1},
	{C: 1, H: 4, W: 2, KH: 5, KW: 5, SH: 1, SW: 1, PH: 2, PW: 2},
	{C: 1, H: 3, W: 7, KH: 3, KW: 7, SH: 1, SW: 1, PH: 0, PW: 3},
	{C: 2, H: 5, W: 6, KH: 4, KW: 3, SH: 1, SW: 1, PH: 0, PW: 1},
	{C: 1, H: 3, W: 3, KH: 1, KW: 3, SH: 1, SW: 1, PH: 2, PW: 1},
}

func testConv(t *testing.T, b tensor.Backend) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, g := range convGeoms {
		for _, n := range []int{1, 3} {
			name := fmt.Sprintf("%+v n=%d", g, n)
			x := randSlice(r, n*g.C*g.H*g.W)
			cols := g.Rows() * n * g.OH() * g.OW()
			want := make([]float32, cols)
			tensor.Reference.Im2Col(g, n, x, want)
			got := newBuffer(cols, func(int) float32 { return 99 })
			b.Im2Col(g, n, x, got.data)
			got.checkGuards(t, "Im2Col "+name)
			for i := range want {
				if got.data[i] != want[i] {
					t.Fatalf("Im2Col %s: col[%d] = %g, want %g", name, i, got.data[i], want[i])
				}
			}
			col := randSlice(r, cols)
			wantX := make([]float32, len(x))
			tensor.Reference.Col2Im(g, n, col, wantX)
			gotX := newBuffer(len(x), func(int) float32 { return 99 })
			b.Col2Im(g, n, col, gotX.data)
			gotX.checkGuards(t, "Col2Im "+name)
			for i := range wantX {
				if !closeTo(float64(gotX.data[i]), float64(wantX[i]), float64(g.KH*g.KW), 1e-6) {
					t.Fatalf("Col2Im %s: x[%d] = %g, want %g", name, i, gotX.data[i], wantX[i])
				}
			}
			// Adjointness: <Im2Col(x), col> = <x, Col2Im(col)>.
			lhs := tensor.Reference.Dot(got.data, col)
			rhs := tensor.Reference.Dot(x, gotX.data)
			if !closeTo(float64(lhs), float64(rhs), math.Abs(float64(lhs)), 1e-4) {
				t.Fatalf("Col2Im %s is not the adjoint of Im2Col: %g vs %g", name, lhs, rhs)
			}
		}
	}
}

// testConv2D checks the fused forward convolution against the direct one,
// with and without bias and ReLU, on geometries that
// cover the packing blocks (rows > 256, outputs > 1024) and the splits
// across cores (by image and, for small batches, by output columns).
func testConv2D(t *testing.T, b tensor.Backend) {
	r := rand.New(rand.NewPCG(21, 22))
	geoms := append(convGeoms[:len(convGeoms):len(convGeoms)],
		tensor.ConvGeom{C: 32, H: 14, W: 14, KH: 3, KW: 3, SH: 1, SW: 1, PH: 1, PW: 1},
		tensor.ConvGeom{C: 1, H: 40, W: 40, KH: 3, KW: 3, SH: 1, SW: 1, PH: 1, PW: 1},
	)
	for _, g := range geoms {
		for _, n := range []int{1, 2, 3} {
			for _, oc := range []int{1, 7, 64} {
				for _, mode := range []struct{ bias, relu bool }{{true, true}, {false, false}, {true, false}, {false, true}} {
					name := fmt.Sprintf("%+v n=%d oc=%d %+v", g, n, oc, mode)
					x, w := randSlice(r, n*g.C*g.H*g.W), randSlice(r, oc*g.Rows())
					var bias []float32
					if mode.bias {
						bias = randSlice(r, oc)
					}
					p := g.OH() * g.OW()
					want := make([]float32, n*oc*p)
					tensor.Reference.Conv2D(g, n, x, &tensor.Packed{W: w, Rows: oc, K: g.Rows(), Left: true}, bias, mode.relu, want)
					got := newBuffer(len(want), func(int) float32 { return float32(math.NaN()) })
					// Packed by b, or not packed at all: the same results.
					pw := &tensor.Packed{W: w, Rows: oc, K: g.Rows(), Left: true}
					if mode.relu {
						b.Pack(pw)
					}
					b.Conv2D(g, n, x, pw, bias, mode.relu, got.data)
					got.checkGuards(t, "Conv2D "+name)
					assertClose(t, "Conv2D "+name, got.data, want, math.Sqrt(float64(g.Rows())), 1e-5)
				}
			}
		}
	}
}

// testConv2DBackward checks the convolution's gradients against direct
// loops over the convolution's definition (dx scattered output by output,
// independent of Col2Im), accumulating into dw and db, with and without dx,
// and dx alone (dw and db nil), on the forward pass's geometries and batch
// splits.
func testConv2DBackward(t *testing.T, b tensor.Backend) {
	r := rand.New(rand.NewPCG(25, 26))
	geoms := append(convGeoms[:len(convGeoms):len(convGeoms)],
		tensor.ConvGeom{C: 32, H: 14, W: 14, KH: 3, KW: 3, SH: 1, SW: 1, PH: 1, PW: 1},
	)
	for _, g := range geoms {
		for _, n := range []int{1, 2, 5} {
			for _, oc := range []int{1, 7, 64} {
				for _, withDx := range []bool{true, false} {
					name := fmt.Sprintf("%+v n=%d oc=%d dx=%v", g, n, oc, withDx)
					oh, ow := g.OH(), g.OW()
					p, rows, size := oh*ow, g.Rows(), g.C*g.H*g.W
					x, w, dy := randSlice(r, n*size), randSlice(r, oc*rows), randSlice(r, n*oc*p)
					dw0, db0 := randSlice(r, oc*rows), randSlice(r, oc)
					wantDw, wantDb := make([]float64, oc*rows), make([]float64, oc)
					wantDx := make([]float64, n*size)
					for o := range oc {
						wantDb[o] = float64(db0[o])
						for r := range rows {
							wantDw[o*rows+r] = float64(dw0[o*rows+r])
						}
					}
					for i := range n {
						for o := range oc {
							for y := range oh {
								for xo := range ow {
									d := float64(dy[(i*oc+o)*p+y*ow+xo])
									wantDb[o] += d
									for c := range g.C {
										for kh := range g.KH {
											for kw := range g.KW {
												ih, iw := y*g.SH+kh-g.PH, xo*g.SW+kw-g.PW
												if ih < 0 || ih >= g.H || iw < 0 || iw >= g.W {
													continue
												}
												row := (c*g.KH+kh)*g.KW + kw
												px := (i*g.C+c)*g.H*g.W + ih*g.W + iw
												wantDw[o*rows+row] += d * float64(x[px])
												wantDx[px] += d * float64(w[o*rows+row])
											}
										}
									}
								}
							}
						}
					}
					dw := newBuffer(len(dw0), func(i int) float32 { return dw0[i] })
					db := newBuffer(len(db0), func(i int) float32 { return db0[i] })
					var dx buffer
					if withDx {
						dx = newBuffer(n*size, func(int) float32 { return float32(math.NaN()) })
					}
					b.Conv2DBackward(g, n, x, w, dy, dw.data, db.data, dx.data)
					dw.checkGuards(t, "Conv2DBackward dw "+name)
					db.checkGuards(t, "Conv2DBackward db "+name)
					scale := math.Sqrt(float64(n * p))
					assertClose(t, "Conv2DBackward dw "+name, dw.data, f32(wantDw), scale, 1e-5)
					assertClose(t, "Conv2DBackward db "+name, db.data, f32(wantDb), scale, 1e-5)
					if withDx {
						dx.checkGuards(t, "Conv2DBackward dx "+name)
						assertClose(t, "Conv2DBackward dx "+name, dx.data, f32(wantDx), math.Sqrt(float64(oc*g.KH*g.KW)), 1e-5)
						// The input gradient alone (dw and db nil).
						dx2 := newBuffer(n*size, func(int) float32 { return float32(math.NaN()) })
						b.Conv2DBackward(g, n, x, w, dy, nil, nil, dx2.data)
						dx2.checkGuards(t, "Conv2DBackward dx only "+name)
						assertClose(t, "Conv2DBackward dx only "+name, dx2.data, f32(wantDx), math.Sqrt(float64(oc*g.KH*g.KW)), 1e-5)
					}
				}
			}
		}
	}
}
