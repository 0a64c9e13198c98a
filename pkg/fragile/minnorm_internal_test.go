package fragile

import (
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
)

// TestMinNormSolve checks minNormSolve against its definition: A x = b, and x has no
// component in A's null space (x = A^T y for some y), which makes it the shortest
// solution; and against gonum's dense solver, the one it replaces.
func TestMinNormSolve(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dims := range [][2]int{{1, 5}, {3, 3}, {9, 784}, {4, 3072}} {
		rows, cols := dims[0], dims[1]
		a := make([]float64, rows*cols)
		for i := range a {
			a[i] = rng.NormFloat64()
		}
		b := make([]float64, rows)
		for i := range b {
			b[i] = rng.NormFloat64()
		}
		am := mat.NewDense(rows, cols, append([]float64(nil), a...))
		x, ok := minNormSolve(append([]float64(nil), a...), rows, cols, b)
		if !ok {
			t.Fatalf("%dx%d: reported rank deficient", rows, cols)
		}
		var ax mat.VecDense
		ax.MulVec(am, mat.NewVecDense(cols, x))
		if !floats.EqualApprox(ax.RawVector().Data, b, 1e-9) {
			t.Errorf("%dx%d: A x = %v, want %v", rows, cols, ax.RawVector().Data[:min(rows, 3)], b[:min(rows, 3)])
		}
		// x in the row space of A: the least-squares y of A^T y = x leaves no residual.
		var y mat.VecDense
		if err := y.SolveVec(am.T(), mat.NewVecDense(cols, x)); err != nil {
			t.Fatal(err)
		}
		var aty mat.VecDense
		aty.MulVec(am.T(), &y)
		if d := floats.Distance(aty.RawVector().Data, x, 2); d > 1e-9*floats.Norm(x, 2) {
			t.Errorf("%dx%d: x has a null-space component of norm %g", rows, cols, d)
		}
		var want mat.VecDense
		if err := want.SolveVec(am, mat.NewVecDense(rows, b)); err != nil {
			t.Fatal(err)
		}
		if !floats.EqualApprox(want.RawVector().Data, x, 1e-9) {
			t.Errorf("%dx%d: differs from gonum's mat solve", rows, cols)
		}
	}
	// A zero row (a competitor whose gradient vanishes at every free coordinate):
	// rank deficient, no step.
	a := []float64{1, 2, 3, 0, 0, 0}
	if _, ok := minNormSolve(a, 2, 3, []float64{1, 2}); ok {
		t.Error("a zero row: want rank deficient")
	}
}
