package fragile

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/diff/fd"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// diversityPenalty is what diversityLoss computes, in float64, for triggers back to
// back: the reference its gradient is checked against.
func diversityPenalty(triggers []float64, size int, lo, hi float64) float64 {
	n := len(triggers) / size
	width := hi - lo
	sum := 0.0
	for i := range n {
		for j := range n {
			if i == j {
				continue
			}
			d2 := 0.0
			for k := range size {
				d := triggers[i*size+k] - triggers[j*size+k]
				d2 += d * d
			}
			sum += math.Exp(-d2 / (float64(size) * width * width * diversityWidth * diversityWidth))
		}
	}
	return sum / float64(n*(n-1))
}

// evalDiversity builds diversityLoss for the n x size matrix v in a graph of dtype dt
// and returns its value and its gradient with respect to v, in float64.
func evalDiversity(t *testing.T, dt tensor.Dtype, v []float64, n, size int, lo, hi, weight float64) (float64, []float64) {
	t.Helper()
	g := G.NewGraph()
	var backing any = v
	if dt == tensor.Float32 {
		backing = toFloat32(v)
	}
	x := G.NewMatrix(g, dt, G.WithShape(n, size), G.WithName("x"),
		G.WithValue(tensor.New(tensor.WithShape(n, size), tensor.WithBacking(backing))))
	loss, err := diversityLoss(x, lo, hi, weight)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := G.Grad(loss, x); err != nil {
		t.Fatal(err)
	}
	var lossVal G.Value
	G.Read(loss, &lossVal)
	vm := G.NewTapeMachine(g, G.BindDualValues(x))
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	grad, err := x.Grad()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, n*size)
	switch d := grad.Data().(type) {
	case []float64:
		copy(out, d)
	case []float32:
		for i, f := range d {
			out[i] = float64(f)
		}
	}
	switch l := lossVal.Data().(type) {
	case float64:
		return l, out
	case float32:
		return float64(l), out
	}
	t.Fatalf("loss of type %T", lossVal.Data())
	return 0, nil
}

// TestDiversityLossGradient checks the penalty's value against the plain float64
// sum and its gradient against central finite differences of that sum.
func TestDiversityLossGradient(t *testing.T) {
	const n, size, lo, hi, weight = 5, 7, -1.0, 3.0, 1.7
	r := rand.New(rand.NewPCG(3, 11))
	x := make([]float64, n*size)
	base := make([]float64, size)
	for k := range base {
		base[k] = lo + (hi-lo)*r.Float64()
	}
	// Near-duplicates of one image, as the generator starts, so every pair is
	// inside the kernel's width and the gradient is far from zero.
	for i := range n {
		for k := range size {
			x[i*size+k] = base[k] + 0.3*(hi-lo)*diversityWidth*r.NormFloat64()
		}
	}
	f := func(v []float64) float64 { return weight * diversityPenalty(v, size, lo, hi) }
	got, grad := evalDiversity(t, tensor.Float64, x, n, size, lo, hi, weight)
	if want := f(x); math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) {
		t.Errorf("penalty %.15g, want %.15g", got, want)
	}
	want := fd.Gradient(nil, f, x, &fd.Settings{Formula: fd.Central, Step: 1e-6})
	largest := 0.0
	for _, g := range want {
		largest = math.Max(largest, math.Abs(g))
	}
	if largest < 1e-3 {
		t.Fatalf("largest gradient %.3g: the test points are too far apart to test anything", largest)
	}
	for i := range want {
		if math.Abs(grad[i]-want[i]) > 1e-6*largest {
			t.Errorf("coordinate %d: analytic %.10g, finite difference %.10g", i, grad[i], want[i])
		}
	}
	// The float32 graph the generator trains with computes the same to float32 precision.
	got32, grad32 := evalDiversity(t, tensor.Float32, x, n, size, lo, hi, weight)
	if math.Abs(got32-got) > 1e-4*got {
		t.Errorf("float32 penalty %.7g, float64 %.7g", got32, got)
	}
	for i := range grad {
		if math.Abs(grad32[i]-grad[i]) > 1e-3*largest {
			t.Errorf("coordinate %d: float32 gradient %.7g, float64 %.7g", i, grad32[i], grad[i])
		}
	}
}

// TestDiversityLossPenalisesDuplicates checks the penalty's purpose: identical
// triggers cost the full weight, triggers far apart almost nothing, and a gradient
// step lowers it by moving the triggers apart.
func TestDiversityLossPenalisesDuplicates(t *testing.T) {
	const n, size, weight = 4, 16, 2.0
	r := rand.New(rand.NewPCG(5, 8))
	same := make([]float64, n*size)
	apart := make([]float64, n*size)
	for k := range size {
		v := r.Float64()
		for i := range n {
			same[i*size+k] = v
			apart[i*size+k] = float64((i >> (k % 2)) & 1) // opposite corners: distances >= 0.7
		}
	}
	if got, _ := evalDiversity(t, tensor.Float64, same, n, size, 0, 1, weight); math.Abs(got-weight) > 1e-12 {
		t.Errorf("identical triggers: penalty %g, want the weight %g", got, weight)
	}
	if got, _ := evalDiversity(t, tensor.Float64, apart, n, size, 0, 1, weight); got > 1e-2*weight {
		t.Errorf("triggers far apart: penalty %g, want near zero", got)
	}
	near := make([]float64, n*size)
	for i := range near {
		near[i] = 0.5 + 0.01*r.NormFloat64()
	}
	before, grad := evalDiversity(t, tensor.Float64, near, n, size, 0, 1, weight)
	for i := range near {
		near[i] -= 1e-2 * math.Copysign(1, grad[i])
	}
	after, _ := evalDiversity(t, tensor.Float64, near, n, size, 0, 1, weight)
	if !(after < before) {
		t.Errorf("a sign step down the gradient raised the penalty from %g to %g", before, after)
	}
}

func TestDiversityLossRejectsBadShapes(t *testing.T) {
	g := G.NewGraph()
	one := G.NewMatrix(g, tensor.Float64, G.WithShape(1, 3), G.WithName("one"))
	if _, err := diversityLoss(one, 0, 1, 1); err == nil {
		t.Error("one trigger: no error")
	}
	vec := G.NewVector(g, tensor.Float64, G.WithShape(3), G.WithName("vec"))
	if _, err := diversityLoss(vec, 0, 1, 1); err == nil {
		t.Error("a vector: no error")
	}
}
