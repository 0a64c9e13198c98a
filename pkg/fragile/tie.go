package fragile

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
)

// Why a tie of every class: a trigger at a two-class boundary flips when an attack
// moves its one margin below zero, which a perturbation with no preferred direction
// does about half the time, however close the trigger sits. A trigger whose C-1
// competitors all sit just below its key label keeps that label only if the attack
// raises the key logit more than every other one: about 1 chance in C for such a
// perturbation, so about (C-1)/C of the triggers flip (0.9 for ten classes).
//
// refineToTie finds such points by Newton's method on the C-1 equations
//
//	z_label(x) - z_j(x) = m   for every class j != label,
//
// m the target margin, from each trigger's current point: the minimum-norm step
// dx = -A^T (A A^T)^-1 b, A the (C-1) x D Jacobian of z_j - z_label and b the residuals.
// The classifiers here are piecewise linear up to the logits (Relu, MaxPool,
// affine layers), so a step that stays in its linear piece lands exactly; steps that
// cross a kink are corrected by the next iteration. Coordinates at the input range's
// bounds are held there.

// TieMargin is how many margin floors (WatermarkOptions.MarginFloor) refineToTie
// leaves between each trigger's key label and every other class. A tied trigger has
// nine near competitors instead of one, and another runtime's rounding moves each of
// them. Measured with make eval, against onnxruntime:
//
//   - two floors (as MethodBoundary): a margin only 1.6x twice the largest logit
//     difference on a Fashion-MNIST MLP; change rate 0.85-0.93, mean 0.900;
//   - ten floors: at least 8x; change rate 0.77-0.93, mean 0.893. Only the weakest
//     attacks lose (one SGD step at lr 1e-4: 0.77-0.83 instead of 0.85-0.90), and
//     every changed model is still detected.
//
// A false "tampered" alarm from a runtime we did not measure costs more than a few
// points of change rate on a one-step attack, so the margin is ten floors.
const TieMargin = 10

// tieIterations bounds the Newton steps of refineToTie.
const tieIterations = 20

// tieBand is how many target margins the farthest competitor may sit below the key
// label for a trigger to count as tied.
const tieBand = 4

// refineToTie moves each trigger towards a point where every class ties with its key
// label, keeping at every accepted point the guarantee refineToBoundary keeps: the
// key label on top with a margin of at least floor times the row's largest absolute
// logit (or the starting point's, if that was larger), in float32 (r) and float64
// (r64). A trigger keeps its best accepted point (the smallest farthest-competitor
// gap), which is its starting point if no step improved on it, so the refinement
// never loses a trigger. It returns the refined triggers and their float32 logits.
func refineToTie(net *nn.Network, r, r64 logitRunner, triggers []float32, labels []int, floor, inputMin, inputMax float64) ([]float32, []float64, error) {
	classes := net.Classes
	n := len(labels)
	size := len(triggers) / n
	jac, err := nn.NewInputGradient(net, n)
	if err != nil {
		return nil, nil, err
	}
	defer jac.Close()

	x := append([]float32(nil), triggers...)
	best := append([]float32(nil), triggers...)
	bestGap := make([]float64, n) // farthest competitor's gap over the target margin
	for i := range bestGap {
		bestGap[i] = math.Inf(1)
	}
	// Margins are measured against each trigger's logit scale at its starting point,
	// not at the current one: a relative target would let the iteration drift to
	// points where every logit is near zero and the required margin vanishes.
	scale := make([]float64, n)
	z0, err := r64.Logits(x)
	if err != nil {
		return nil, nil, err
	}
	for i := range scale {
		scale[i] = maxAbs(z0[i*classes : (i+1)*classes])
	}
	target := TieMargin * floor
	for iter := 0; ; iter++ {
		z32, err := r.Logits(x)
		if err != nil {
			return nil, nil, err
		}
		z64, err := r64.Logits(x)
		if err != nil {
			return nil, nil, err
		}
		tied := 0
		for i := 0; i < n; i++ {
			row32, row64 := z32[i*classes:(i+1)*classes], z64[i*classes:(i+1)*classes]
			if keepsLabel(row32, labels[i], floor, scale[i]) && keepsLabel(row64, labels[i], floor, scale[i]) {
				if gap := farthestGap(row64, labels[i]) / (target * scale[i]); gap < bestGap[i] {
					bestGap[i] = gap
					copy(best[i*size:(i+1)*size], x[i*size:(i+1)*size])
				}
			}
			if bestGap[i] <= tieBand {
				tied++
			}
		}
		if tied == n || iter == tieIterations {
			break
		}
		rows, err := competitorGradients(jac, x, labels, classes)
		if err != nil {
			return nil, nil, err
		}
		for i := 0; i < n; i++ {
			if bestGap[i] <= tieBand {
				continue // tied already: leave it
			}
			newtonStep(x[i*size:(i+1)*size], rows, i, z64[i*classes:(i+1)*classes], labels[i], target*scale[i], inputMin, inputMax)
		}
	}
	logits, err := r.Logits(best)
	if err != nil {
		return nil, nil, err
	}
	for i := 0; i < n; i++ {
		if !keepsLabel(logits[i*classes:(i+1)*classes], labels[i], floor, scale[i]) { // cannot happen: best only holds accepted points
			return nil, nil, fmt.Errorf("tie refinement lost trigger %d's key label", i)
		}
	}
	return best, logits, nil
}

// competitorGradients returns, for p in 0..classes-2, the input gradients of
// z_j - z_label for every trigger, j its p-th class other than its label.
func competitorGradients(jac *nn.InputGradient, x []float32, labels []int, classes int) ([][]float64, error) {
	rows := make([][]float64, classes-1)
	weights := make([]float32, len(labels)*classes)
	for p := range rows {
		clear(weights)
		for i, l := range labels {
			weights[i*classes+competitor(l, p)] = 1
			weights[i*classes+l] = -1
		}
		var err error
		if rows[p], err = jac.Gradient(x, weights); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// competitor is the p-th class other than label, in index order.
func competitor(label, p int) int {
	if p >= label {
		return p + 1
	}
	return p
}

// newtonStep moves trigger i (xi, its values) by the minimum-norm step that solves
// the linearised equations z_label - z_j = margin, over the coordinates not at
// a bound of the input range, and clips the result to the range.
func newtonStep(xi []float32, rows [][]float64, i int, z []float64, label int, margin, inputMin, inputMax float64) {
	size := len(xi)
	k := len(rows)
	free := make([]bool, size)
	for c, v := range xi {
		free[c] = float64(v) > inputMin && float64(v) < inputMax
	}
	a := mat.NewDense(k, size, nil)
	b := mat.NewVecDense(k, nil)
	for p := 0; p < k; p++ {
		g := rows[p][i*size : (i+1)*size]
		for c := range size {
			if free[c] {
				a.Set(p, c, g[c])
			}
		}
		b.SetVec(p, z[competitor(label, p)]-z[label]+margin)
	}
	var gram mat.Dense
	gram.Mul(a, a.T())
	// A small ridge keeps the solve defined when two competitors' gradients coincide.
	ridge := 1e-12 * mat.Trace(&gram) / float64(k)
	for p := 0; p < k; p++ {
		gram.Set(p, p, gram.At(p, p)+ridge)
	}
	var y mat.VecDense
	if err := y.SolveVec(&gram, b); err != nil {
		return // singular: no step this iteration
	}
	var dx mat.VecDense
	dx.MulVec(a.T(), &y)
	for c := range size {
		v := float64(xi[c]) - dx.AtVec(c)
		xi[c] = float32(math.Min(inputMax, math.Max(inputMin, v)))
	}
}

// farthestGap is the largest z_label - z_j over the other classes j.
func farthestGap(row []float64, label int) float64 {
	gap := 0.0
	for j, v := range row {
		if j != label {
			gap = math.Max(gap, row[label]-v)
		}
	}
	return gap
}
