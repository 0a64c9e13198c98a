package nn_test

import (
	"cmp"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"weak"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/internal/onnxtest"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// Gradient checks compare the graph's analytic gradients (float64) with central
// finite differences (f(p+h) - f(p-h)) / 2h of the same float64 forward pass.
//
// Kinks: the networks are piecewise linear up to the logits (Relu, MaxPool). A
// coordinate is checked only when the plain-Go reference makes the same discrete
// choices (every Relu sign, every MaxPool argmax) at p-h, p and p+h; otherwise the
// difference straddles a kink and is skipped. At least minChecked of the sampled
// coordinates must be checked, so the rule cannot skip a test into passing.
const (
	// gradRelTol bounds |analytic - fd| / max(|analytic|, |fd|). Within one linear
	// piece the only curvature is the loss's log-softmax, whose O(h^2) truncation
	// error and O(eps/h) rounding error both stay below 1e-8 at the steps used.
	gradRelTol = 1e-6
	// gradAbsFloor, times the largest gradient magnitude checked, is added to the
	// allowance, so exact zeros (inactive units) compare with rounding noise.
	gradAbsFloor = 1e-9
	// lossNoise bounds the rounding noise of one float64 evaluation of the loss,
	// relative to |L| (measured: about 3e-16, one eps). A central difference divides
	// the noise of two evaluations by 2h, so lossNoise*|L|/h is added to the
	// allowance; it matters only for gradients near zero.
	lossNoise = 1e-14
	// minChecked is the fraction of sampled coordinates that must be kink-free.
	minChecked = 0.8
)

// lossGraph is a classifier and a scalar loss in one float64 graph:
//
//	L = sum_ij P_ij z_ij + sum_i log softmax(z_i)[t_i],  z = logits / scale
//
// P a fixed random projection and t fixed labels, so every logit and the log-softmax
// both feed the gradient. scale brings mnist-7's logits (thousands) to order one.
type lossGraph struct {
	net     *nn.Network
	batch   int
	x       *G.Node
	built   *nn.Built
	lossVal G.Value
	vm      G.VM
}

func newLossGraph(t *testing.T, net *nn.Network, batch int, scale float64, r *rand.Rand, withGrad bool) *lossGraph {
	t.Helper()
	g := G.NewGraph()
	shape := append([]int{batch}, net.InputShape...)
	x := G.NewTensor(g, tensor.Float64, len(shape), G.WithShape(shape...), G.WithName("x"))
	built, err := net.Build(g, x)
	if err != nil {
		t.Fatal(err)
	}
	c := net.Classes
	proj := make([]float64, batch*c)
	onehot := make([]float64, batch*c)
	for i := range proj {
		proj[i] = r.NormFloat64()
	}
	for i := 0; i < batch; i++ {
		onehot[i*c+r.IntN(c)] = 1
	}
	must := func(n *G.Node, err error) *G.Node {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	z := must(G.Mul(built.Logits, G.NewConstant(1/scale)))
	p := G.NewConstant(tensor.New(tensor.WithShape(batch, c), tensor.WithBacking(proj)), G.WithName("P"))
	t1 := must(G.Sum(must(G.HadamardProd(z, p))))
	ls := must(nn.LogSoftmax(z))
	oh := G.NewConstant(tensor.New(tensor.WithShape(batch, c), tensor.WithBacking(onehot)), G.WithName("onehot"))
	t2 := must(G.Sum(must(G.HadamardProd(ls, oh))))
	loss := must(G.Add(t1, t2))
	lg := &lossGraph{net: net, batch: batch, x: x, built: built}
	G.Read(loss, &lg.lossVal)
	if withGrad {
		wrt := append(G.Nodes{x}, built.WeightNodes(net)...)
		if _, err := G.Grad(loss, wrt...); err != nil {
			t.Fatalf("Grad: %v", err)
		}
		lg.vm = G.NewTapeMachine(g, G.BindDualValues(wrt...))
	} else {
		lg.vm = G.NewTapeMachine(g)
	}
	t.Cleanup(func() { lg.vm.Close() })
	return lg
}

func (lg *lossGraph) run(t *testing.T, inputs []float64) float64 {
	t.Helper()
	shape := append([]int{lg.batch}, lg.net.InputShape...)
	if err := G.Let(lg.x, tensor.New(tensor.WithShape(shape...), tensor.WithBacking(slices.Clone(inputs)))); err != nil {
		t.Fatal(err)
	}
	lg.vm.Reset()
	if err := lg.vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	return lg.lossVal.Data().(float64)
}

// weight is the live backing array of a weight node: writing to it changes the next run.
func (lg *lossGraph) weight(t *testing.T, name string) []float64 {
	t.Helper()
	w, ok := lg.built.Weights[name]
	if !ok {
		t.Fatalf("no weight node %s", name)
	}
	return w.Value().Data().([]float64)
}

func gradOf(t *testing.T, n *G.Node) []float64 {
	t.Helper()
	g, err := n.Grad()
	if err != nil {
		t.Fatalf("gradient of %s: %v", n.Name(), err)
	}
	return slices.Clone(g.Data().([]float64))
}

// gradCase is one model and point to check.
type gradCase struct {
	model  *onnx.Model
	inputs []float64 // batch examples back to back
	batch  int
	scale  float64
	hInput float64 // finite-difference step on inputs
	hParam float64 // finite-difference step on weights
	// slopes finds kinks by one-sided differences instead of the plain-Go
	// reference's traces, for ops the reference does not implement: a coordinate
	// is checked only when (L(p+h)-L(p))/h and (L(p)-L(p-h))/h agree within
	// slopeTol, which a kink between p-h and p+h breaks by its jump in slope.
	slopes bool
}

// A kink-free coordinate's two one-sided differences differ by h*L” plus
// rounding: at most slopeTol of the slope, or slopeCurvature*h where the slope is
// near zero (|L”| of these losses stays below 10).
const (
	slopeTol       = 1e-3
	slopeCurvature = 10
)

// traces runs the reference on every example, with the given weight overrides.
func traces(t *testing.T, m *onnx.Model, inputs []float64, batch int, override map[string][]float64) []*onnxtest.Trace {
	t.Helper()
	size := len(inputs) / batch
	out := make([]*onnxtest.Trace, batch)
	for b := range out {
		_, tr, err := onnxtest.Run(m, inputs[b*size:(b+1)*size], override)
		if err != nil {
			t.Fatal(err)
		}
		out[b] = tr
	}
	return out
}

// pick returns up to n random coordinates of g and the k largest in magnitude.
func pick(r *rand.Rand, g []float64, n, k int) []int {
	idx := make([]int, len(g))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(math.Abs(g[b]), math.Abs(g[a])) })
	chosen := map[int]bool{}
	for _, i := range idx[:min(k, len(idx))] {
		chosen[i] = true
	}
	for _, i := range r.Perm(len(g))[:min(n, len(g))] {
		chosen[i] = true
	}
	out := make([]int, 0, len(chosen))
	for i := range chosen {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

// checkGradients compares analytic and finite-difference gradients of the loss with
// respect to the inputs and to every weight.
func checkGradients(t *testing.T, tc gradCase, r *rand.Rand) {
	net, err := nn.Compile(tc.model)
	if err != nil {
		t.Fatal(err)
	}
	seed := r.Uint64()
	analytic := newLossGraph(t, net, tc.batch, tc.scale, rand.New(rand.NewPCG(seed, 1)), true)
	fd := newLossGraph(t, net, tc.batch, tc.scale, rand.New(rand.NewPCG(seed, 1)), false)
	l0 := analytic.run(t, tc.inputs)
	if l1 := fd.run(t, tc.inputs); math.Abs(l0-l1) > 1e-12*math.Abs(l0) {
		t.Fatalf("the two graphs disagree on the loss: %g and %g", l0, l1)
	}

	params := map[string][]float64{}
	for _, name := range net.ParamNames() {
		var v []float64
		for _, f := range net.Param(name).Float {
			v = append(v, float64(f))
		}
		params[name] = v
	}
	var base []*onnxtest.Trace
	if !tc.slopes {
		base = traces(t, tc.model, tc.inputs, tc.batch, nil)
	}
	// bent reports a slope change between the one-sided differences around l0.
	bent := func(lp, lm, h float64) bool {
		up, down := (lp-l0)/h, (l0-lm)/h
		return math.Abs(up-down) > slopeTol*math.Max(math.Abs(up), math.Abs(down))+slopeCurvature*h+lossNoise*math.Abs(l0)/h
	}

	type check struct {
		what           string
		analytic, diff float64
	}
	compare := func(t *testing.T, checks []check, sampled int, h float64) {
		t.Helper()
		if float64(len(checks)) < minChecked*float64(sampled) {
			t.Fatalf("only %d of %d sampled coordinates are away from kinks", len(checks), sampled)
		}
		scale, nonzero := 0.0, 0
		for _, c := range checks {
			scale = math.Max(scale, math.Abs(c.analytic))
			if c.analytic != 0 {
				nonzero++
			}
		}
		if nonzero == 0 {
			t.Fatal("every checked gradient is zero: the check proves nothing")
		}
		worst := 0.0
		for _, c := range checks {
			err := math.Abs(c.analytic - c.diff)
			allowed := gradRelTol*math.Max(math.Abs(c.analytic), math.Abs(c.diff)) + gradAbsFloor*scale + lossNoise*math.Abs(l0)/h
			if err > allowed {
				t.Errorf("%s: analytic %.10g, finite difference %.10g", c.what, c.analytic, c.diff)
			}
			if c.analytic != 0 {
				worst = math.Max(worst, err/math.Abs(c.analytic))
			}
		}
		t.Logf("%d of %d coordinates checked (%d non-zero), worst relative error %.2g", len(checks), sampled, nonzero, worst)
	}

	t.Run("input", func(t *testing.T) {
		g := gradOf(t, analytic.x)
		size := len(tc.inputs) / tc.batch
		coords := pick(r, g, 30, 10)
		var checks []check
		for _, k := range coords {
			b := k / size
			plus, minus := slices.Clone(tc.inputs), slices.Clone(tc.inputs)
			plus[k] += tc.hInput
			minus[k] -= tc.hInput
			lp, lm := fd.run(t, plus), fd.run(t, minus)
			if tc.slopes {
				if bent(lp, lm, tc.hInput) {
					continue
				}
			} else {
				tp := traces(t, tc.model, plus[b*size:(b+1)*size], 1, nil)[0]
				tm := traces(t, tc.model, minus[b*size:(b+1)*size], 1, nil)[0]
				if !tp.Equal(base[b]) || !tm.Equal(base[b]) {
					continue
				}
			}
			d := (lp - lm) / (2 * tc.hInput)
			checks = append(checks, check{what: "input " + strconv.Itoa(k), analytic: g[k], diff: d})
		}
		compare(t, checks, len(coords), tc.hInput)
	})

	for _, name := range net.ParamNames() {
		t.Run(name, func(t *testing.T) {
			w := analytic.built.Weights[name]
			if w == nil {
				t.Fatalf("weight %s has no node", name)
			}
			g := gradOf(t, w)
			live := fd.weight(t, name)
			coords := pick(r, g, 6, 2)
			var checks []check
			for _, k := range coords {
				orig := live[k]
				live[k] = orig + tc.hParam
				lp := fd.run(t, tc.inputs)
				live[k] = orig - tc.hParam
				lm := fd.run(t, tc.inputs)
				live[k] = orig
				if tc.slopes {
					if bent(lp, lm, tc.hParam) {
						continue
					}
				} else {
					over := map[string][]float64{name: slices.Clone(params[name])}
					over[name][k] = orig + tc.hParam
					tp := traces(t, tc.model, tc.inputs, tc.batch, over)
					over[name][k] = orig - tc.hParam
					tm := traces(t, tc.model, tc.inputs, tc.batch, over)
					kinked := false
					for b := range base {
						kinked = kinked || !tp[b].Equal(base[b]) || !tm[b].Equal(base[b])
					}
					if kinked {
						continue
					}
				}
				checks = append(checks, check{what: name + "[" + strconv.Itoa(k) + "]", analytic: g[k], diff: (lp - lm) / (2 * tc.hParam)})
			}
			if l := fd.run(t, tc.inputs); l != l0 {
				t.Fatalf("restoring the weights did not restore the loss: %g, was %g", l, l0)
			}
			compare(t, checks, len(coords), tc.hParam)
		})
	}
}

func TestGradientsMNIST7(t *testing.T) {
	m, _ := mnist7(t)
	r := rand.New(rand.NewPCG(21, 22))
	// Zoo digits with up to one grey level of noise: blank regions of a clean digit
	// make every Relu of a MaxPool window equal (conv of zeros plus the bias), and
	// such exact ties are MaxPool kinks at the point itself.
	var inputs []float64
	for i := 0; i < 2; i++ {
		image, _ := zooSet(t, i)
		for _, v := range image {
			inputs = append(inputs, float64(v)+r.Float64())
		}
	}
	checkGradients(t, gradCase{
		model: m, inputs: inputs, batch: 2,
		scale:  1000, // mnist-7's logits are in the thousands
		hInput: 1e-2, // pixels are 0..255
		hParam: 1e-5,
	}, r)
}

func TestGradientsMLP(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	m := onnxtest.MLP(r)
	const batch = 3
	inputs := make([]float64, batch*16)
	for i := range inputs {
		inputs[i] = r.Float64()
	}
	checkGradients(t, gradCase{model: m, inputs: inputs, batch: batch, scale: 1, hInput: 1e-5, hParam: 1e-5}, r)
}

func TestGradientsConvNet(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	m := onnxtest.ConvNet(r)
	const batch = 2
	inputs := make([]float64, batch*100)
	for i := range inputs {
		inputs[i] = r.Float64()
	}
	checkGradients(t, gradCase{model: m, inputs: inputs, batch: batch, scale: 1, hInput: 1e-5, hParam: 1e-5}, r)
}

// TestInputGradientMatchesFiniteDifferences checks nn.InputGradient (float32) against
// central differences of the weighted logits computed by a float64 Runner, on the
// small conv net (Conv, MaxPool, Relu, Gemm) and on mnist-7. Both are piecewise
// linear, so away from a kink the difference is exact up to rounding; the step is
// small enough that random inputs do not straddle one.
func TestInputGradientMatchesFiniteDifferences(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	conv, err := nn.Compile(onnxtest.ConvNet(r))
	if err != nil {
		t.Fatal(err)
	}
	_, mnist := mnist7(t)
	for name, c := range map[string]struct {
		net   *nn.Network
		scale float64 // input range
	}{"conv": {conv, 1}, "mnist-7": {mnist, 255}} {
		t.Run(name, func(t *testing.T) {
			const batch = 3
			size, classes := c.net.InputSize(), c.net.Classes
			inputs := make([]float32, batch*size)
			for i := range inputs {
				inputs[i] = float32(c.scale * r.Float64())
			}
			weights := make([]float32, batch*classes)
			for i := range weights {
				weights[i] = float32(r.NormFloat64())
			}
			ig, err := nn.NewInputGradient(c.net, batch)
			if err != nil {
				t.Fatal(err)
			}
			defer ig.Close()
			got, err := ig.Gradient(inputs, weights)
			if err != nil {
				t.Fatal(err)
			}
			r64, err := nn.NewRunner(c.net, batch, tensor.Float64)
			if err != nil {
				t.Fatal(err)
			}
			defer r64.Close()
			objective := func(in []float32) float64 {
				z, err := r64.Logits(in)
				if err != nil {
					t.Fatal(err)
				}
				s := 0.0
				for i, v := range z {
					s += float64(weights[i]) * v
				}
				return s
			}
			largest := 0.0
			for _, g := range got {
				largest = math.Max(largest, math.Abs(g))
			}
			h := float32(1e-5 * c.scale) // the divisor below is the step float32 actually took
			for k := 0; k < 40; k++ {
				i := r.IntN(len(inputs))
				plus, minus := slices.Clone(inputs), slices.Clone(inputs)
				plus[i] += h
				minus[i] -= h
				fd := (objective(plus) - objective(minus)) / float64(plus[i]-minus[i])
				if math.Abs(fd-got[i]) > 1e-4*largest {
					t.Errorf("coordinate %d: analytic %.6g, finite difference %.6g (largest gradient %.3g)", i, got[i], fd, largest)
				}
			}
			if _, err := ig.Gradient(inputs[:size], weights); err == nil {
				t.Error("Gradient with one example for a batch of 3: no error")
			}
		})
	}
}

// TestRunnersAreFreed guards against a leak: a Runner or InputGradient that is no
// longer referenced must be collectable. gorgonia sets a finalizer on every tape
// machine, and the runtime never frees a cycle through an object with a finalizer,
// so any path from the machine back to the struct holding it leaks the whole graph
// (the full evaluation once grew past 14 GiB that way).
func TestRunnersAreFreed(t *testing.T) {
	_, net := mnist7(t)
	runner, err := nn.NewRunner(net, 2, tensor.Float32)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runner.Logits(make([]float32, 2*net.InputSize())); err != nil {
		t.Fatal(err)
	}
	runner.Close()
	ig, err := nn.NewInputGradient(net, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ig.Gradient(make([]float32, 2*net.InputSize()), make([]float32, 2*net.Classes)); err != nil {
		t.Fatal(err)
	}
	ig.Close()
	weakRunner, weakGradient := weak.Make(runner), weak.Make(ig)
	runner, ig = nil, nil
	for range 3 {
		runtime.GC()
	}
	if weakRunner.Value() != nil {
		t.Error("a dropped Runner is still reachable after garbage collection")
	}
	if weakGradient.Value() != nil {
		t.Error("a dropped InputGradient is still reachable after garbage collection")
	}
}

// TestInputGradientShards checks the promise InputGradient's sharding rests on: an
// example's gradient is bitwise the same whether the batch runs as one graph or is
// split over several (uneven shards, and more shards than workers, included), on
// mnist-7 and the small conv net.
func TestInputGradientShards(t *testing.T) {
	r := rand.New(rand.NewPCG(43, 44))
	conv, err := nn.Compile(onnxtest.ConvNet(r))
	if err != nil {
		t.Fatal(err)
	}
	_, mnist := mnist7(t)
	for name, net := range map[string]*nn.Network{"conv": conv, "mnist-7": mnist} {
		t.Run(name, func(t *testing.T) {
			const batch = 7
			size, classes := net.InputSize(), net.Classes
			inputs := make([]float32, batch*size)
			for i := range inputs {
				inputs[i] = float32(r.Float64())
			}
			weights := make([]float32, batch*classes)
			for i := range weights {
				weights[i] = float32(r.NormFloat64())
			}
			var want []float64
			for _, shards := range [][2]int{{1, batch}, {2, batch}, {3, batch}, {7, batch}, {20, batch}, {1, 2}, {2, 3}} {
				ig, err := nn.NewInputGradientShards(net, batch, shards[0], shards[1])
				if err != nil {
					t.Fatal(err)
				}
				got, err := ig.Gradient(inputs, weights)
				ig.Close()
				if err != nil {
					t.Fatal(err)
				}
				if want == nil {
					want = got
					continue
				}
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("shards %v: value %d (example %d) is %v, one graph gives %v", shards, i, i/size, got[i], want[i])
					}
				}
			}
		})
	}
}
