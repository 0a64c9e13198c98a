package infer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// windowCase is a window geometry the kernels must handle: padding on some or all
// sides, strides, dilations, a kernel as wide as the padded input.
type windowCase struct {
	h, w, kh, kw, sh, sw, dh, dw int
	pads                         [4]int64 // top, left, bottom, right
	ceil                         bool
}

var windowCases = []windowCase{
	{h: 8, w: 8, kh: 3, kw: 3, sh: 1, sw: 1, dh: 1, dw: 1, pads: [4]int64{1, 1, 1, 1}},
	{h: 14, w: 14, kh: 5, kw: 5, sh: 1, sw: 1, dh: 1, dw: 1, pads: [4]int64{2, 2, 2, 2}},
	{h: 32, w: 32, kh: 3, kw: 3, sh: 2, sw: 2, dh: 1, dw: 1, pads: [4]int64{1, 1, 1, 1}},
	{h: 16, w: 16, kh: 1, kw: 1, sh: 2, sw: 2, dh: 1, dw: 1},
	{h: 9, w: 7, kh: 3, kw: 2, sh: 2, sw: 3, dh: 2, dw: 1, pads: [4]int64{0, 2, 1, 0}},
	{h: 5, w: 6, kh: 3, kw: 3, sh: 1, sw: 1, dh: 2, dw: 2, pads: [4]int64{2, 2, 2, 2}},
	{h: 28, w: 28, kh: 2, kw: 2, sh: 2, sw: 2, dh: 1, dw: 1},
	{h: 14, w: 14, kh: 3, kw: 3, sh: 3, sw: 3, dh: 1, dw: 1},
	{h: 7, w: 7, kh: 3, kw: 3, sh: 2, sw: 2, dh: 1, dw: 1, pads: [4]int64{1, 1, 1, 1}, ceil: true},
	{h: 4, w: 20, kh: 4, kw: 3, sh: 1, sw: 1, dh: 1, dw: 1, pads: [4]int64{3, 1, 0, 1}},
	{h: 6, w: 5, kh: 3, kw: 3, sh: 2, sw: 2, dh: 1, dw: 1, pads: [4]int64{0, 1, 1, 0}},
	{h: 3, w: 3, kh: 3, kw: 3, sh: 1, sw: 1, dh: 1, dw: 1, pads: [4]int64{2, 2, 2, 2}},
	// Taps that read only padding: resnet18's last stages at 32 px.
	{h: 1, w: 1, kh: 3, kw: 3, sh: 1, sw: 1, dh: 1, dw: 1, pads: [4]int64{1, 1, 1, 1}},
	{h: 2, w: 2, kh: 3, kw: 3, sh: 2, sw: 2, dh: 1, dw: 1, pads: [4]int64{1, 1, 1, 1}},
}

func (c windowCase) window(t *testing.T) window {
	t.Helper()
	node := &onnx.Node{OpType: "Conv", Attributes: []onnx.Attribute{
		{Name: "strides", Ints: []int64{int64(c.sh), int64(c.sw)}},
		{Name: "dilations", Ints: []int64{int64(c.dh), int64(c.dw)}},
		{Name: "pads", Ints: c.pads[:]},
	}}
	g, err := windowOf(node, c.kh, c.kw, c.h, c.w, c.ceil)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// at is the input value a window position reads, and whether it lies inside.
func (g *window) at(plane []float32, oy, ox, ky, kx int) (float32, bool) {
	iy, ix := oy*g.sh-g.top+ky*g.dh, ox*g.sw-g.left+kx*g.dw
	if iy < 0 || iy >= g.h || ix < 0 || ix >= g.w {
		return 0, false
	}
	return plane[iy*g.w+ix], true
}

// TestIm2col compares im2col with its definition on every geometry, calling it
// twice on one buffer: the padded entries it never writes must read as zero both
// times.
func TestIm2col(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range windowCases {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			g := tc.window(t)
			const cg = 3
			ohw := g.oh * g.ow
			pl := newColPlan(&g)
			col := make([]float32, cg*pl.rows*ohw)
			for call := 0; call < 2; call++ {
				x := uniform(rng, cg*g.h*g.w, 1)
				for i := range x {
					x[i] += 0.5 // no zeros in the input: a zero in col means padding
				}
				im2col(pl, x, cg, col)
				for c := 0; c < cg; c++ {
					plane := x[c*g.h*g.w : (c+1)*g.h*g.w]
					k := 0 // the tap's row among the kept ones
					for ky := 0; ky < g.kh; ky++ {
						for kx := 0; kx < g.kw; kx++ {
							kept := k < len(pl.taps) && pl.taps[k] == ky*g.kw+kx
							reads := false
							for oy := 0; oy < g.oh; oy++ {
								for ox := 0; ox < g.ow; ox++ {
									want, inside := g.at(plane, oy, ox, ky, kx)
									reads = reads || inside
									if !kept {
										continue
									}
									row := c*pl.rows + k
									if got := col[row*ohw+oy*g.ow+ox]; got != want {
										t.Fatalf("call %d: col[c %d, ky %d, kx %d][oy %d, ox %d] = %g, want %g", call, c, ky, kx, oy, ox, got, want)
									}
								}
							}
							if reads != kept {
								t.Fatalf("tap ky %d, kx %d reads the input: %v; kept: %v", ky, kx, reads, kept)
							}
							if kept {
								k++
							}
						}
					}
				}
			}
		})
	}
}

// TestMaxPool compares maxPool with its definition on every geometry, with NaN
// and signed zeros in the input.
func TestMaxPool(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, tc := range windowCases {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			g := tc.window(t)
			x := uniform(rng, g.h*g.w, 2)
			for i := range x {
				x[i]--
				switch rng.IntN(20) {
				case 0:
					x[i] = float32(math.NaN())
				case 1:
					x[i] = float32(math.Copysign(0, -1))
				case 2:
					x[i] = 0
				}
			}
			out := make([]float32, g.oh*g.ow)
			maxPool(&g, x, out, make([]float32, g.w))
			for oy := 0; oy < g.oh; oy++ {
				for ox := 0; ox < g.ow; ox++ {
					want := float32(math.Inf(-1))
					for ky := 0; ky < g.kh; ky++ {
						for kx := 0; kx < g.kw; kx++ {
							if v, ok := g.at(x, oy, ox, ky, kx); ok {
								want = max(want, v)
							}
						}
					}
					got := out[oy*g.ow+ox]
					if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
						t.Fatalf("out[%d, %d] = %g, want %g", oy, ox, got, want)
					}
				}
			}
		})
	}
}

// TestFinishFused checks that the fused bias + residual + ReLU pass, and bias +
// Clip, round exactly as the steps one after the other.
func TestFinishFused(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const m, ohw = 5, 37
	y := uniform(rng, m*ohw, 2)
	res := uniform(rng, m*ohw, 2)
	bias := uniform(rng, m, 2)
	for i := range y {
		y[i]--
		res[i]--
	}
	for _, withBias := range []bool{false, true} {
		for _, withRes := range []bool{false, true} {
			e := epilogue[float32]{act: activation{kind: "Relu"}}
			var r []float32
			want := slices.Clone(y)
			for i := range want {
				if withBias {
					want[i] += bias[i/ohw]
				}
				if withRes {
					want[i] += res[i]
				}
				if want[i] < 0 {
					want[i] = 0
				}
			}
			clip := slices.Clone(y)
			for i := range clip {
				clip[i] = min(max(clip[i]+bias[i/ohw], -0.25), 0.5)
			}
			gotClip := slices.Clone(y)
			finish(gotClip, m, ohw, &epilogue[float32]{bias: bias, act: activation{kind: "Clip", min: -0.25, max: 0.5}}, nil)
			if !slices.Equal(gotClip, clip) {
				t.Fatalf("bias + Clip: %v, want %v", gotClip, clip)
			}
			if withBias {
				e.bias = bias
			}
			if withRes {
				r = res
			}
			got := slices.Clone(y)
			finish(got, m, ohw, &e, r)
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("bias %v, residual %v: element %d = %g, want %g", withBias, withRes, i, got[i], want[i])
				}
			}
		}
	}
}

// TestWideConv computes stride-1 convolutions through the wide layout (padded
// input, one column copy per row, extra columns dropped by the epilogue) and
// compares them with the convolution's definition, bias, residual and ReLU
// included, calling it twice on the same buffers.
func TestWideConv(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, tc := range windowCases {
		if tc.sh != 1 || tc.sw != 1 || tc.ceil {
			continue
		}
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			g := tc.window(t)
			const cg, m = 3, 4
			kdim, ohw := cg*g.kh*g.kw, g.oh*g.ow
			wc := newWideConv(&g)
			xp, col, wide := make([]float32, wc.padded(&g, cg)), make([]float32, kdim*wc.n), make([]float32, m*wc.n)
			weights, bias := uniform(rng, m*kdim, 2), uniform(rng, m, 1)
			for i := range weights {
				weights[i]--
			}
			e := epilogue[float32]{bias: bias, act: activation{kind: "Relu"}}
			for call := 0; call < 2; call++ {
				x, res := uniform(rng, cg*g.h*g.w, 1), uniform(rng, m*ohw, 1)
				for i := range res {
					res[i] -= 0.5
				}
				wideCols(&g, &wc, x, cg, xp, col)
				gemm(false, false, m, wc.n, kdim, weights, kdim, col, wc.n, 0, wide, wc.n)
				y := make([]float32, m*ohw)
				finishWide(y, wide, m, g.oh, g.ow, wc.pw, &e, res)
				for o := 0; o < m; o++ {
					for oy := 0; oy < g.oh; oy++ {
						for ox := 0; ox < g.ow; ox++ {
							want := float64(bias[o])
							for c := 0; c < cg; c++ {
								for ky := 0; ky < g.kh; ky++ {
									for kx := 0; kx < g.kw; kx++ {
										v, _ := g.at(x[c*g.h*g.w:(c+1)*g.h*g.w], oy, ox, ky, kx)
										want += float64(weights[o*kdim+(c*g.kh+ky)*g.kw+kx]) * float64(v)
									}
								}
							}
							i := (o*g.oh+oy)*g.ow + ox
							want = max(want+float64(res[i]), 0)
							if got := float64(y[i]); math.Abs(got-want) > 1e-5*(1+math.Abs(want)) {
								t.Fatalf("call %d: y[%d, %d, %d] = %g, want %g", call, o, oy, ox, got, want)
							}
						}
					}
				}
			}
		})
	}
}

// TestDepthwise compares the depthwise kernel (3x3 windows take their own path)
// with the convolution's definition on every geometry, twice on the same buffers.
func TestDepthwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, tc := range windowCases {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			g := tc.window(t)
			const c = 3
			padded := make([]float32, (g.h+g.top+g.bottom)*(g.w+g.left+g.right))
			y := uniform(rng, c*g.oh*g.ow, 1) // overwritten
			for call := 0; call < 2; call++ {
				x, weights := uniform(rng, c*g.h*g.w, 2), uniform(rng, c*g.kh*g.kw, 2)
				for i := range x {
					x[i]--
				}
				depthwiseConv(&g, x, weights, y, c, padded)
				for ch := 0; ch < c; ch++ {
					for oy := 0; oy < g.oh; oy++ {
						for ox := 0; ox < g.ow; ox++ {
							var want float64
							for ky := 0; ky < g.kh; ky++ {
								for kx := 0; kx < g.kw; kx++ {
									v, _ := g.at(x[ch*g.h*g.w:(ch+1)*g.h*g.w], oy, ox, ky, kx)
									want += float64(weights[(ch*g.kh+ky)*g.kw+kx]) * float64(v)
								}
							}
							if got := float64(y[(ch*g.oh+oy)*g.ow+ox]); math.Abs(got-want) > 1e-5*(1+math.Abs(want)) {
								t.Fatalf("call %d: y[%d, %d, %d] = %g, want %g", call, ch, oy, ox, got, want)
							}
						}
					}
				}
			}
		})
	}
}

// TestClipFusedWithConstantBounds: PyTorch places a Clip's bounds in Constant
// nodes between the Conv and the Clip (MobileNet's ReLU6). The Clip must still
// be fused into the Conv (no step of its own) and clip as the ONNX op does.
func TestClipFusedWithConstantBounds(t *testing.T) {
	build := func(clip bool) *Program {
		b := onnx.NewBuilder(rand.New(rand.NewPCG(15, 16)), "test", "x", 1, 2, 6, 6)
		conv := b.Node("Conv", []string{"x", b.Weight("w", 0, 1, 3, 2, 3, 3), b.Weight("b", 0, 1, 3)}, onnx.AttrInts("pads", 1, 1, 1, 1))
		if clip {
			lo, hi := b.FloatConstant(nil, 0), b.FloatConstant(nil, 0.5)
			b.Node("Clip", []string{conv, lo, hi})
		}
		b.Node("GlobalMaxPool", []string{b.Last()})
		b.Node("Flatten", []string{b.Last()})
		prog, err := Compile(b.Model(1, 3))
		if err != nil {
			t.Fatal(err)
		}
		return prog
	}
	clipped, plain := build(true), build(false)
	if got, want := len(clipped.probe.steps), len(plain.probe.steps); got != want {
		t.Errorf("with the Clip the plan has %d steps, without it %d: the Clip was not fused", got, want)
	}
	x := uniform(rand.New(rand.NewPCG(17, 18)), 2*6*6, 4)
	for i := range x {
		x[i] -= 2
	}
	var logits [2][]float64
	for k, prog := range []*Program{clipped, plain} {
		r, err := NewRunner[float32](prog, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		if logits[k], err = r.Logits(x); err != nil {
			t.Fatal(err)
		}
	}
	for c, v := range logits[0] {
		// The maximum of the clipped map is the clipped maximum.
		if want := min(max(logits[1][c], 0), 0.5); v != want {
			t.Errorf("channel %d: %g, want %g (unclipped %g)", c, v, want, logits[1][c])
		}
	}
}

// TestIm2colConv multiplies the column matrix by the weights of the taps it
// keeps (dropTaps) and compares the product with the convolution's definition,
// on every geometry: taps that read only padding must change nothing but the work.
func TestIm2colConv(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	for _, tc := range windowCases {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			g := tc.window(t)
			const cg, m = 3, 5
			taps, ohw := g.kh*g.kw, g.oh*g.ow
			pl := newColPlan(&g)
			if pl.rows == 0 {
				t.Skip("no tap reads the input")
			}
			weights, x := uniform(rng, m*cg*taps, 2), uniform(rng, cg*g.h*g.w, 1)
			for i := range weights {
				weights[i]--
			}
			kept := dropTaps(weights, m, cg, taps, pl)
			col, y := make([]float32, cg*pl.rows*ohw), make([]float32, m*ohw)
			im2col(pl, x, cg, col)
			gemm(false, false, m, ohw, cg*pl.rows, kept, cg*pl.rows, col, ohw, 0, y, ohw)
			for o := 0; o < m; o++ {
				for oy := 0; oy < g.oh; oy++ {
					for ox := 0; ox < g.ow; ox++ {
						var want float64
						for c := 0; c < cg; c++ {
							for ky := 0; ky < g.kh; ky++ {
								for kx := 0; kx < g.kw; kx++ {
									v, _ := g.at(x[c*g.h*g.w:(c+1)*g.h*g.w], oy, ox, ky, kx)
									want += float64(weights[(o*cg+c)*taps+ky*g.kw+kx]) * float64(v)
								}
							}
						}
						if got := float64(y[(o*g.oh+oy)*g.ow+ox]); math.Abs(got-want) > 1e-5*(1+math.Abs(want)) {
							t.Fatalf("y[%d, %d, %d] = %g, want %g", o, oy, ox, got, want)
						}
					}
				}
			}
		})
	}
}
