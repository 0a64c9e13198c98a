package nn

import (
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/tensor"
)

// broadcastAt is the flat index into shape of the output multi-index pos (of the
// same rank), reading axis a at 0 where shape[a] is 1: numpy broadcasting by its
// definition.
func broadcastAt(shape tensor.Shape, pos []int) int {
	f := 0
	for a, p := range pos {
		if shape[a] == 1 {
			p = 0
		}
		f = f*shape[a] + p
	}
	return f
}

func TestMatMulKernelValues(t *testing.T) {
	r := rand.New(rand.NewPCG(101, 102))
	for _, c := range []struct{ a, b, out tensor.Shape }{
		{tensor.Shape{3, 4}, tensor.Shape{4, 2}, tensor.Shape{3, 2}},
		{tensor.Shape{2, 3, 4}, tensor.Shape{2, 4, 5}, tensor.Shape{2, 3, 5}},
		{tensor.Shape{2, 1, 3, 4}, tensor.Shape{1, 5, 4, 2}, tensor.Shape{2, 5, 3, 2}},
		{tensor.Shape{1, 2, 1, 3, 4}, tensor.Shape{3, 1, 2, 4, 1}, tensor.Shape{3, 2, 2, 3, 1}},
	} {
		var k matMulKernel
		shapes := []tensor.Shape{c.a, c.b}
		got, err := k.outShape(shapes)
		if err != nil || !got.Eq(c.out) {
			t.Fatalf("MatMul of %v and %v: shape %v (%v), want %v", c.a, c.b, got, err, c.out)
		}
		a, b := randomValues(r, c.a.TotalSize()), randomValues(r, c.b.TotalSize())
		y := runForward(k, [][]float64{a, b}, shapes)
		rank := len(c.out)
		n, inner, m := c.a[rank-2], c.a[rank-1], c.b[rank-1]
		pos := make([]int, rank)
		for o := range y {
			unravel(o, c.out, pos)
			i, j := pos[rank-2], pos[rank-1]
			want := 0.0
			for p := range inner {
				pos[rank-2], pos[rank-1] = i, p
				av := a[broadcastAt(c.a, pos)]
				pos[rank-2], pos[rank-1] = p, j
				want += av * b[broadcastAt(c.b, pos)]
			}
			if math.Abs(y[o]-want) > 1e-12 {
				t.Fatalf("MatMul of %v and %v: output %d is %g, want %g (n %d, m %d)", c.a, c.b, o, y[o], want, n, m)
			}
		}
	}
	if _, err := (matMulKernel{}).outShape([]tensor.Shape{{2, 3, 4}, {3, 4, 5}}); err == nil {
		t.Error("batch sizes 2 and 3 broadcast")
	}
	if _, err := (matMulKernel{}).outShape([]tensor.Shape{{3, 4}, {3, 5}}); err == nil {
		t.Error("inner sizes 4 and 3 multiply")
	}
}

func TestPowBroadcastValues(t *testing.T) {
	r := rand.New(rand.NewPCG(103, 104))
	k := powBroadcastKernel()
	xs, ys := tensor.Shape{2, 1, 3, 1, 4}, tensor.Shape{1, 2, 3, 5, 1}
	shapes := []tensor.Shape{xs, ys}
	out, err := k.outShape(shapes)
	if err != nil || !out.Eq(tensor.Shape{2, 2, 3, 5, 4}) {
		t.Fatalf("shape %v (%v)", out, err)
	}
	x, y := randomValues(r, xs.TotalSize()), randomValues(r, ys.TotalSize())
	for i := range x {
		x[i] = math.Abs(x[i])
	}
	z := runForward(k, [][]float64{x, y}, shapes)
	pos := make([]int, len(out))
	for o := range z {
		unravel(o, out, pos)
		if want := math.Pow(x[broadcastAt(xs, pos)], y[broadcastAt(ys, pos)]); z[o] != want {
			t.Fatalf("element %d: %g, want %g", o, z[o], want)
		}
	}
	// The derivatives at the edges are PyTorch's.
	for _, c := range []struct{ x, y, dx, dy float64 }{
		{0, 0, 0, 0},            // 0^0 = 1: neither moves it to first order in PyTorch's convention
		{0, 2, 0, 0},            // d/dy of 0^y for y >= 0 is taken as 0, not 0 * log 0
		{2, 0, 0, math.Ln2},     // d/dx of x^0 is 0
		{-2, 3, 12, math.NaN()}, // a negative base has no real log
	} {
		if dx := k.dx(c.x, c.y); dx != c.dx {
			t.Errorf("d/dx %g^%g = %g, want %g", c.x, c.y, dx, c.dx)
		}
		if dy := k.dy(c.x, c.y); !(dy == c.dy || math.IsNaN(dy) && math.IsNaN(c.dy)) {
			t.Errorf("d/dy %g^%g = %g, want %g", c.x, c.y, dy, c.dy)
		}
	}
}
