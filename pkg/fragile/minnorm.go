package fragile

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/lapack/gonum"
)

// minNormSolve returns the minimum-norm x with A x = b, A a wide matrix (rows <= cols)
// stored row-major in a, which it overwrites with its LQ factorisation. ok is false
// when A is rank deficient (an exact zero on L's diagonal): no unique minimum-norm
// solution of the linearisation, so no step.
//
// Why not mat.VecDense.SolveVec: gonum's mat.LQ (and mat.QR) build the full cols x cols
// orthogonal factor on every factorisation, O(rows cols^2) time and cols^2 memory: for
// a 3x32x32 trigger 9 x 9.4M multiply-adds per Newton step, and 181 GB for a 3x224x224
// one. The solution needs only Q's first rows rows, applied as Householder reflectors:
// A = L Q, so x = Q^T [L^-1 b; 0], O(rows^2 cols) in all.
func minNormSolve(a []float64, rows, cols int, b []float64) (x []float64, ok bool) {
	var impl gonum.Implementation
	tau := make([]float64, rows)
	x = make([]float64, cols)
	copy(x, b)
	query := []float64{0}
	impl.Dgelqf(rows, cols, a, cols, tau, query, -1)
	lwork := int(query[0])
	impl.Dormlq(blas.Left, blas.Trans, cols, 1, rows, a, cols, tau, x, 1, query, -1)
	lwork = max(lwork, int(query[0]), 1)
	work := make([]float64, lwork)
	impl.Dgelqf(rows, cols, a, cols, tau, work, lwork)
	if !impl.Dtrtrs(blas.Lower, blas.NoTrans, blas.NonUnit, rows, 1, a, cols, x, 1) {
		return nil, false
	}
	impl.Dormlq(blas.Left, blas.Trans, cols, 1, rows, a, cols, tau, x, 1, work, lwork)
	return x, true
}
