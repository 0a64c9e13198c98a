package fragile

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

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
// refineToTie finds such points by Newton's method on the k equations
//
//	z_label(x) - z_j(x) = m   for each of the trigger's k competitors j,
//
// m the target margin, from each trigger's current point: the minimum-norm solution
// dx of A dx = -b, A the k x D Jacobian of z_j - z_label and b the residuals, which
// gonum finds from the LQ factorisation of the wide A itself (forming A A^T would
// square its condition number). A trigger's competitors are its k strongest
// runner-up classes at the current point (all C-1 when k is 0 or at least C-1), so
// the cost of an iteration is k input-gradient passes, whatever the number of classes.
//
// The guarantee about the other C-1-k classes is the one every accepted point
// keeps: they sit below the key label by at least the margin floor (keepsLabel
// checks every class). They are not tied: an attack flips such a trigger through
// one of its k competitors, or through a far class that it lifts past the key label.
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

// refineToTie moves each trigger towards a point where its k competitors tie with its
// key label, keeping at every accepted point the guarantee refineToBoundary keeps:
// the key label on top of every class with a margin of at least floor times the
// row's largest absolute logit (or the starting point's, if that was larger), in
// float32 and float64. A trigger keeps its best accepted point (the smallest
// farthest-competitor gap), which is its starting point if no step improved on it, so
// the refinement never loses a trigger. It returns the refined triggers and their
// float32 logits.
func refineToTie(ctx context.Context, m *target, triggers []float32, labels []int, opts tieOptions) ([]float32, []float64, error) {
	classes := m.net.Classes
	n := len(labels)
	k := opts.competitors(classes)
	jac, err := nn.NewInputGradient(m.net, n)
	if err != nil {
		return nil, nil, err
	}
	defer jac.Close()

	x := newTieBatch(triggers, n)
	best := newTieBatch(triggers, n)
	bestGap := make([]float64, n) // farthest competitor's gap over the target margin
	for i := range bestGap {
		bestGap[i] = math.Inf(1)
	}
	// Margins are measured against each trigger's logit scale at its starting point,
	// not at the current one: a relative target would let the iteration drift to
	// points where every logit is near zero and the required margin vanishes.
	scale := make([]float64, n)
	z0, err := m.logits64(x.pixels)
	if err != nil {
		return nil, nil, err
	}
	for i := range scale {
		// An anchored tie also sets the key logit's level, and margins follow it.
		scale[i] = math.Max(opts.anchor, maxAbs(z0[i*classes:(i+1)*classes]))
	}
	target := TieMargin * opts.floor
	for iter := 0; ; iter++ {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		z32, err := m.logits32(x.pixels)
		if err != nil {
			return nil, nil, err
		}
		z64, err := m.logits64(x.pixels)
		if err != nil {
			return nil, nil, err
		}
		x.chooseCompetitors(z64, labels, classes, k)
		tied := 0
		for i := 0; i < n; i++ {
			row32, row64 := z32[i*classes:(i+1)*classes], z64[i*classes:(i+1)*classes]
			if keepsLabel(row32, labels[i], opts.floor, scale[i]) && keepsLabel(row64, labels[i], opts.floor, scale[i]) {
				if gap := farthestGap(row64, labels[i], x.competitors[i]) / (target * scale[i]); gap < bestGap[i] {
					bestGap[i] = gap
					copy(best.row(i), x.row(i))
				}
			}
			if bestGap[i] <= tieBand {
				tied++
			}
		}
		if tied == n || iter == tieIterations {
			break
		}
		grads, err := x.competitorGradients(ctx, jac, m.norm, labels, classes)
		if err != nil {
			return nil, nil, err
		}
		var level []float64 // gradient of the key logit, for the anchor's equation
		if opts.anchor > 0 {
			if level, err = x.keyGradient(jac, m.norm, labels, classes); err != nil {
				return nil, nil, err
			}
		}
		for i := 0; i < n; i++ {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
			if bestGap[i] <= tieBand {
				continue // tied already: leave it
			}
			x.newtonStep(i, grads, level, z64[i*classes:(i+1)*classes], labels[i], target*scale[i], opts)
		}
	}
	logits, err := m.logits32(best.pixels)
	if err != nil {
		return nil, nil, err
	}
	for i := 0; i < n; i++ {
		if !keepsLabel(logits[i*classes:(i+1)*classes], labels[i], opts.floor, scale[i]) { // cannot happen: best only holds accepted points
			return nil, nil, fmt.Errorf("tie refinement lost trigger %d's key label", i)
		}
	}
	return best.pixels, logits, nil
}

// tieOptions are refineToTie's parameters.
type tieOptions struct {
	floor              float64 // margin floor, relative to the logit scale
	inputMin, inputMax float64 // pixel range
	k                  int     // competitors per trigger; 0 for every other class
	// anchor, when positive, is the level the key logit is held at: one more
	// equation, z_label(x) = anchor, so the tie sits where the network is as loud
	// as on natural inputs instead of drifting to where every logit is near zero.
	anchor float64
}

// competitors is the number of competitors each trigger is tied to.
func (o tieOptions) competitors(classes int) int {
	if o.k <= 0 || o.k > classes-1 {
		return classes - 1
	}
	return o.k
}

// tieBatch is the batch refineToTie moves: n pixel-space triggers back to back, and
// each trigger's current competitors, strongest first.
type tieBatch struct {
	pixels      []float32
	size        int
	competitors [][]int
}

func newTieBatch(pixels []float32, n int) *tieBatch {
	return &tieBatch{pixels: slices.Clone(pixels), size: len(pixels) / n, competitors: make([][]int, n)}
}

// row is trigger i's values.
func (b *tieBatch) row(i int) []float32 { return b.pixels[i*b.size : (i+1)*b.size] }

// chooseCompetitors sets each trigger's k strongest classes other than its label.
func (b *tieBatch) chooseCompetitors(logits []float64, labels []int, classes, k int) {
	for i, l := range labels {
		row := logits[i*classes : (i+1)*classes]
		others := make([]int, 0, classes-1)
		for j := range classes {
			if j != l {
				others = append(others, j)
			}
		}
		slices.SortStableFunc(others, func(a, c int) int {
			switch {
			case row[a] > row[c]:
				return -1
			case row[a] < row[c]:
				return 1
			}
			return 0
		})
		b.competitors[i] = others[:k]
	}
}

// competitorGradients returns, for p in 0..k-1, the pixel-space gradients of
// z_j - z_label for every trigger, j its p-th competitor.
func (b *tieBatch) competitorGradients(ctx context.Context, jac *nn.InputGradient, norm normalizer, labels []int, classes int) ([][]float64, error) {
	k := len(b.competitors[0])
	grads := make([][]float64, k)
	weights := make([]float32, len(labels)*classes)
	inputs := norm.apply(b.pixels)
	for p := range grads {
		if err := ctx.Err(); err != nil { // a pass takes seconds on a 224-pixel model
			return nil, err
		}
		clear(weights)
		for i, l := range labels {
			weights[i*classes+b.competitors[i][p]] = 1
			weights[i*classes+l] = -1
		}
		var err error
		if grads[p], err = jac.Gradient(inputs, weights); err != nil {
			return nil, err
		}
		norm.pullBack(grads[p])
	}
	return grads, nil
}

// keyGradient returns the pixel-space gradient of every trigger's key logit.
func (b *tieBatch) keyGradient(jac *nn.InputGradient, norm normalizer, labels []int, classes int) ([]float64, error) {
	weights := make([]float32, len(labels)*classes)
	for i, l := range labels {
		weights[i*classes+l] = 1
	}
	grad, err := jac.Gradient(norm.apply(b.pixels), weights)
	if err != nil {
		return nil, err
	}
	norm.pullBack(grad)
	return grad, nil
}

// newtonStep moves trigger i by the minimum-norm step that solves the linearised
// equations z_label - z_j = margin over its competitors j (and z_label = anchor
// when level, the key logits' gradients, is given), over the coordinates not at a
// bound of the pixel range, and clips the result to the range.
func (b *tieBatch) newtonStep(i int, grads [][]float64, level []float64, z []float64, label int, margin float64, opts tieOptions) {
	xi := b.row(i)
	k := len(grads)
	rows := k
	if level != nil {
		rows++
	}
	free := make([]bool, b.size)
	for c, v := range xi {
		free[c] = float64(v) > opts.inputMin && float64(v) < opts.inputMax
	}
	a := mat.NewDense(rows, b.size, nil)
	rhs := mat.NewVecDense(rows, nil)
	setRow := func(p int, g []float64, residual float64) {
		for c := range b.size {
			if free[c] {
				a.Set(p, c, g[c])
			}
		}
		rhs.SetVec(p, residual)
	}
	for p := 0; p < k; p++ {
		setRow(p, grads[p][i*b.size:(i+1)*b.size], z[b.competitors[i][p]]-z[label]+margin)
	}
	if level != nil {
		setRow(k, level[i*b.size:(i+1)*b.size], z[label]-opts.anchor)
	}
	var dx mat.VecDense
	if err := dx.SolveVec(a, rhs); err != nil {
		var cond mat.Condition
		if !errors.As(err, &cond) || math.IsInf(float64(cond), 1) {
			return // singular: no step this iteration
		}
		// Ill-conditioned (two competitors' gradients nearly coincide): the step is
		// still the minimum-norm one; the margin check rejects it if it overshoots.
	}
	for c := range b.size {
		v := float64(xi[c]) - dx.AtVec(c)
		xi[c] = float32(math.Min(opts.inputMax, math.Max(opts.inputMin, v)))
	}
}

// farthestGap is the largest z_label - z_j over the competitors j.
func farthestGap(row []float64, label int, competitors []int) float64 {
	gap := 0.0
	for _, j := range competitors {
		gap = math.Max(gap, row[label]-row[j])
	}
	return gap
}
