package nn

import (
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/tensor"
)

// The N-D kernels are checked for values here, against the 2-D kernels on 2-D
// windows and against plain nested-loop references on 3-D ones; TestOpGradients
// checks their gradients against finite differences, and the ONNX backend suite
// (package conformance) their values against the ONNX reference outputs.

func randomValues(r *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = r.NormFloat64()
	}
	return v
}

func runForward(k kernel, in [][]float64, shapes []tensor.Shape) []float64 {
	s, err := k.outShape(shapes)
	if err != nil {
		panic(err)
	}
	out := make([]float64, s.TotalSize())
	k.forward(out, in, shapes)
	return out
}

func runBackward(k kernel, wrt int, gradOut []float64, in [][]float64, shapes []tensor.Shape) []float64 {
	grad := make([]float64, shapes[wrt].TotalSize())
	k.backward(wrt, grad, gradOut, in, shapes)
	return grad
}

func sameValues(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12*(1+math.Abs(want[i])) {
			t.Fatalf("%s: value %d is %g, want %g", what, i, got[i], want[i])
		}
	}
}

// randomWindow draws strides, dilations and asymmetric pads for kernel sizes ks.
func randomWindow(r *rand.Rand, ks []int) windowND {
	w := windowND{kernel: ks}
	for range ks {
		w.strides = append(w.strides, 1+r.IntN(2))
		w.dilations = append(w.dilations, 1+r.IntN(2))
		w.padBegin = append(w.padBegin, r.IntN(3))
		w.padEnd = append(w.padEnd, r.IntN(3))
	}
	return w
}

func TestConvNDMatchesConv2D(t *testing.T) {
	r := rand.New(rand.NewPCG(91, 92))
	checked := 0
	for range 40 {
		groups := 1 + r.IntN(2)
		cg, mg := 1+r.IntN(2), 1+r.IntN(2)
		ks := []int{1 + r.IntN(3), 1 + r.IntN(3)}
		win := randomWindow(r, ks)
		x := tensor.Shape{2, groups * cg, 5 + r.IntN(3), 4 + r.IntN(3)}
		w := tensor.Shape{groups * mg, cg, ks[0], ks[1]}
		nd := &convNDKernel{groups: groups, win: win}
		flat := &convKernel{groups: groups, strides: [2]int(win.strides), dilations: [2]int(win.dilations),
			padTop: win.padBegin[0], padLeft: win.padBegin[1], padBottom: win.padEnd[0], padRight: win.padEnd[1]}
		shapes := []tensor.Shape{x, w}
		if _, err := flat.outShape(shapes); err != nil {
			continue // the window is larger than the padded input
		}
		in := [][]float64{randomValues(r, x.TotalSize()), randomValues(r, w.TotalSize())}
		want := runForward(flat, in, shapes)
		sameValues(t, nd.String()+" forward", runForward(nd, in, shapes), want)
		gradOut := randomValues(r, len(want))
		for wrt := range 2 {
			sameValues(t, nd.String()+" backward", runBackward(nd, wrt, gradOut, in, shapes), runBackward(flat, wrt, gradOut, in, shapes))
		}
		checked++
	}
	if checked < 10 {
		t.Fatalf("only %d of the random windows fit their inputs", checked)
	}
}

func TestPoolNDMatchesPool2D(t *testing.T) {
	r := rand.New(rand.NewPCG(93, 94))
	checked := 0
	for range 60 {
		ks := []int{1 + r.IntN(3), 1 + r.IntN(3)}
		win := randomWindow(r, ks)
		for a := range ks {
			// ONNX requires pads smaller than the kernel for pooling.
			win.padBegin[a] %= ks[a]
			win.padEnd[a] %= ks[a]
		}
		average, ceil, countPad := r.IntN(2) == 0, r.IntN(2) == 0, r.IntN(2) == 0
		nd := &poolNDKernel{average: average, win: win, ceil: ceil, countPad: countPad}
		flat := &poolKernel{average: average, kernel: [2]int(ks), strides: [2]int(win.strides), dilations: [2]int(win.dilations),
			padTop: win.padBegin[0], padLeft: win.padBegin[1], padBottom: win.padEnd[0], padRight: win.padEnd[1],
			ceil: ceil, countPad: countPad}
		shapes := []tensor.Shape{{2, 3, 5 + r.IntN(3), 4 + r.IntN(3)}}
		if _, err := flat.outShape(shapes); err != nil {
			continue
		}
		in := [][]float64{randomValues(r, shapes[0].TotalSize())}
		want := runForward(flat, in, shapes)
		sameValues(t, nd.String()+" forward", runForward(nd, in, shapes), want)
		gradOut := randomValues(r, len(want))
		sameValues(t, nd.String()+" backward", runBackward(nd, 0, gradOut, in, shapes), runBackward(flat, 0, gradOut, in, shapes))
		checked++
	}
	if checked < 10 {
		t.Fatalf("only %d of the random windows fit their inputs", checked)
	}
}

// conv3D is the textbook definition of 3-D grouped convolution with bias.
func conv3D(x, w, bias []float64, xs, ws tensor.Shape, groups int, win windowND) ([]float64, tensor.Shape) {
	od := (xs[2]+win.padBegin[0]+win.padEnd[0]-(ws[2]-1)*win.dilations[0]-1)/win.strides[0] + 1
	oh := (xs[3]+win.padBegin[1]+win.padEnd[1]-(ws[3]-1)*win.dilations[1]-1)/win.strides[1] + 1
	ow := (xs[4]+win.padBegin[2]+win.padEnd[2]-(ws[4]-1)*win.dilations[2]-1)/win.strides[2] + 1
	ys := tensor.Shape{xs[0], ws[0], od, oh, ow}
	y := make([]float64, ys.TotalSize())
	mg := ws[0] / groups
	at := func(s tensor.Shape, i ...int) int {
		f := 0
		for a, v := range i {
			f = f*s[a] + v
		}
		return f
	}
	for n := range xs[0] {
		for m := range ws[0] {
			g := m / mg
			for d := range od {
				for h := range oh {
					for v := range ow {
						sum := bias[m]
						for c := range ws[1] {
							for i := range ws[2] {
								for j := range ws[3] {
									for k := range ws[4] {
										id := d*win.strides[0] - win.padBegin[0] + i*win.dilations[0]
										ih := h*win.strides[1] - win.padBegin[1] + j*win.dilations[1]
										iw := v*win.strides[2] - win.padBegin[2] + k*win.dilations[2]
										if id < 0 || id >= xs[2] || ih < 0 || ih >= xs[3] || iw < 0 || iw >= xs[4] {
											continue
										}
										sum += x[at(xs, n, g*ws[1]+c, id, ih, iw)] * w[at(ws, m, c, i, j, k)]
									}
								}
							}
						}
						y[at(ys, n, m, d, h, v)] = sum
					}
				}
			}
		}
	}
	return y, ys
}

func TestConvND3DValues(t *testing.T) {
	r := rand.New(rand.NewPCG(95, 96))
	checked := 0
	for range 30 {
		groups := 1 + r.IntN(3)
		cg, mg := 1+r.IntN(2), 1+r.IntN(2)
		ks := []int{1 + r.IntN(3), 1 + r.IntN(3), 1 + r.IntN(3)}
		win := randomWindow(r, ks)
		xs := tensor.Shape{2, groups * cg, 3 + r.IntN(3), 4 + r.IntN(3), 3 + r.IntN(3)}
		ws := tensor.Shape{groups * mg, cg, ks[0], ks[1], ks[2]}
		bs := tensor.Shape{1, ws[0], 1, 1, 1}
		k := &convNDKernel{groups: groups, win: win, bias: true}
		shapes := []tensor.Shape{xs, ws, bs}
		if _, err := k.outShape(shapes); err != nil {
			continue
		}
		in := [][]float64{randomValues(r, xs.TotalSize()), randomValues(r, ws.TotalSize()), randomValues(r, ws[0])}
		want, ys := conv3D(in[0], in[1], in[2], xs, ws, groups, win)
		if s, _ := k.outShape(shapes); !s.Eq(ys) {
			t.Fatalf("%v: output shape %v, want %v", k, s, ys)
		}
		sameValues(t, k.String(), runForward(k, in, shapes), want)
		checked++
	}
	if checked < 10 {
		t.Fatalf("only %d of the random windows fit their inputs", checked)
	}
}

// pool3D is the textbook definition of 3-D max and average pooling.
func pool3D(x []float64, xs tensor.Shape, k *poolNDKernel) []float64 {
	win := k.win
	var out []int
	for a := range 3 {
		out = append(out, poolOut(xs[2+a], win.kernel[a], win.strides[a], win.dilations[a], win.padBegin[a], win.padEnd[a], k.ceil))
	}
	var y []float64
	for plane := range xs[0] * xs[1] {
		for d := range out[0] {
			for h := range out[1] {
				for v := range out[2] {
					best, sum, inside := math.Inf(-1), 0.0, 0
					start := []int{d*win.strides[0] - win.padBegin[0], h*win.strides[1] - win.padBegin[1], v*win.strides[2] - win.padBegin[2]}
					for i := range win.kernel[0] {
						for j := range win.kernel[1] {
							for l := range win.kernel[2] {
								p := []int{start[0] + i*win.dilations[0], start[1] + j*win.dilations[1], start[2] + l*win.dilations[2]}
								if p[0] < 0 || p[0] >= xs[2] || p[1] < 0 || p[1] >= xs[3] || p[2] < 0 || p[2] >= xs[4] {
									continue
								}
								val := x[((plane*xs[2]+p[0])*xs[3]+p[1])*xs[4]+p[2]]
								best, sum, inside = math.Max(best, val), sum+val, inside+1
							}
						}
					}
					switch {
					case !k.average:
						y = append(y, best)
					case k.countPad:
						div := 1
						for a := range 3 {
							div *= min(start[a]+win.kernel[a], xs[2+a]+win.padEnd[a]) - start[a]
						}
						y = append(y, sum/float64(div))
					default:
						y = append(y, sum/float64(inside))
					}
				}
			}
		}
	}
	return y
}

func TestPoolND3DValues(t *testing.T) {
	r := rand.New(rand.NewPCG(97, 98))
	checked := 0
	for range 40 {
		ks := []int{1 + r.IntN(3), 1 + r.IntN(3), 1 + r.IntN(3)}
		win := randomWindow(r, ks)
		for a := range ks {
			win.padBegin[a] %= ks[a]
			win.padEnd[a] %= ks[a]
		}
		k := &poolNDKernel{average: r.IntN(2) == 0, win: win, ceil: r.IntN(2) == 0, countPad: r.IntN(2) == 0}
		shapes := []tensor.Shape{{2, 3, 3 + r.IntN(3), 4 + r.IntN(3), 3 + r.IntN(3)}}
		if _, err := k.outShape(shapes); err != nil {
			continue
		}
		x := randomValues(r, shapes[0].TotalSize())
		sameValues(t, k.String(), runForward(k, [][]float64{x}, shapes), pool3D(x, shapes[0], k))
		checked++
	}
	if checked < 10 {
		t.Fatalf("only %d of the random windows fit their inputs", checked)
	}
}
