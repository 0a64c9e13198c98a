package fragile

import (
	"context"
	"fmt"
	"math"
	"slices"

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
// dx of A dx = -b, A the k x D Jacobian of z_j - z_label and b the residuals, found
// from the LQ factorisation of the wide A itself (forming A A^T would square its
// condition number; minNormSolve). A trigger's competitors are its k strongest
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
//
// That is the default target. With WatermarkOptions.NoiseMargin set (for instance
// PruningNoiseMargin) the floor is set from the float32 rounding measured at each
// trigger instead (tieOptions.noise) and the target is NoiseTieFloors floors: on
// oval21__cifar_wide_kw ten relative floors were 460 times the rounding at the median
// trigger, margins no weight change smaller than that could cross (BENCHMARKS.md,
// issue 11).
const TieMargin = 10

// tieIterations bounds the Newton steps of refineToTie.
const tieIterations = 20

// tieBand is how many target margins the farthest competitor may sit below the key
// label for a trigger to count as tied.
const tieBand = 4

// refineToTie moves each trigger towards a point where its k competitors tie with its
// key label, keeping at every accepted point the guarantee refineToBoundary keeps:
// the key label on top of every class, in float32 and float64, with a margin of at
// least the trigger's floor (see tieOptions.floorAt). A trigger keeps its best
// accepted point (the smallest farthest-competitor gap; among tied points, with a
// pruning probe, the largest exposure to it), which is its starting point if no step
// improved on it, so the refinement never loses a trigger. It returns the refined
// triggers and their float32 logits.
//
// With a probe, a tied trigger then alternates: one step up the gradient of its
// exposure (a sign step, as projected gradient ascent takes, which leaves the tie),
// and up to probeCorrections Newton steps back to a tie; the new tied point replaces
// the best one if its exposure is larger, and the ascent step grows, or the trigger
// goes back to its best point and the step shrinks.
func refineToTie(ctx context.Context, m *target, triggers []float32, labels []int, opts tieOptions) ([]float32, []float64, error) {
	classes := m.net.Classes
	n := len(labels)
	k := opts.competitors(classes)
	jac, err := m.inputGradient(n)
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
	bestExposure := make([]float64, n) // at best, with a probe
	step := make([]float64, n)         // each trigger's ascent step
	for i := range step {
		bestExposure[i], step[i] = math.Inf(-1), probeStep
	}
	correcting := make([]int, n) // Newton steps since the last ascent step; 0: at its best point
	// Margins are measured against each trigger's logit scale at its starting point,
	// not at the current one: a relative target would let the iteration drift to
	// points where every logit is near zero and the required margin vanishes.
	// floorScale is what the margin floor is relative to (the guarantee every
	// accepted point keeps); scale, what the target margin is relative to: an
	// anchored tie also sets the key logit's level, and its margins follow it.
	floorScale, scale := make([]float64, n), make([]float64, n)
	z0, err := m.logits64(x.pixels)
	if err != nil {
		return nil, nil, err
	}
	z0f, err := m.logits32(x.pixels)
	if err != nil {
		return nil, nil, err
	}
	for i := range scale {
		floorScale[i] = maxAbs(z0[i*classes : (i+1)*classes])
		scale[i] = math.Max(opts.anchor, floorScale[i])
	}
	noise := roundingNoise(z0f, z0, classes)
	target := make([]float64, n)
	for i := range target {
		target[i] = opts.targetAt(scale[i], noise[i])
	}
	// An accepted point clears the floor in both precisions, the floor set from the
	// larger of the trigger's rounding at its starting point and at the point itself:
	// the rounding changes as the trigger moves (measured: up to twice).
	floorOf := func(row32, row64 []float64, i int) float64 {
		nu := math.Max(noise[i], largestDifference(row32, row64))
		return math.Max(opts.floorAt(floorScale[i], row32, nu), opts.floorAt(floorScale[i], row64, nu))
	}
	accepted := func(row32, row64 []float64, i int) bool {
		floor := floorOf(row32, row64, i)
		return clears(row32, labels[i], floor) && clears(row64, labels[i], floor)
	}
	iterations := tieIterations
	if opts.probe != nil {
		iterations += probeIterations
	}
	wait := make([]bool, n) // sent back to its best point: no step this iteration
	ascend := make([]bool, n)
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
		var zp []float64
		if opts.probe != nil {
			if zp, err = opts.probe.r64.Logits(m.norm.apply(x.pixels)); err != nil {
				return nil, nil, err
			}
		}
		x.chooseCompetitors(z64, labels, classes, k)
		tied := 0
		for i := 0; i < n; i++ {
			row32, row64 := z32[i*classes:(i+1)*classes], z64[i*classes:(i+1)*classes]
			ok := accepted(row32, row64, i)
			gap := farthestGap(row64, labels[i], x.competitors[i]) / target[i]
			wait[i], ascend[i] = false, false
			switch {
			case zp == nil || bestGap[i] > tieBand:
				// Not tied yet (or no probe): the point closest to a tie.
				if ok && gap < bestGap[i] {
					bestGap[i] = gap
					copy(best.row(i), x.row(i))
					if zp != nil && gap <= tieBand {
						bestExposure[i], _ = exposure(row64, zp[i*classes:(i+1)*classes], labels[i], x.competitors[i])
					}
				}
				ascend[i] = zp != nil && bestGap[i] <= tieBand
				if ascend[i] && !slices.Equal(best.row(i), x.row(i)) {
					copy(x.row(i), best.row(i))
					wait[i], ascend[i] = true, false
				}
			case correcting[i] == 0:
				ascend[i] = true // at its best point
			case ok && gap <= tieBand:
				// Tied again after an ascent step: keep it if the probe sees it better.
				if e, _ := exposure(row64, zp[i*classes:(i+1)*classes], labels[i], x.competitors[i]); e > bestExposure[i] {
					bestGap[i], bestExposure[i] = gap, e
					copy(best.row(i), x.row(i))
					step[i] = math.Min(probeStepMax, step[i]*probeStepGrow)
					correcting[i], ascend[i] = 0, true
				} else {
					step[i] *= probeStepShrink
					copy(x.row(i), best.row(i))
					correcting[i], wait[i] = 0, true
				}
			case correcting[i] > probeCorrections:
				step[i] *= probeStepShrink
				copy(x.row(i), best.row(i))
				correcting[i], wait[i] = 0, true
			}
			if bestGap[i] <= tieBand {
				tied++
			}
		}
		if opts.progress != nil {
			opts.progress(Progress{Phase: PhaseRefinement, Step: iter, MaxSteps: iterations, KeyMatch: 1, Tied: float64(tied) / float64(n)})
		}
		if iter == iterations || (tied == n && opts.probe == nil) {
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
		var ascent [][]float64 // per ascending trigger, the gradient of its exposure
		if slices.Contains(ascend, true) {
			if ascent, err = x.exposureGradients(opts.probe.jac, m.norm, grads, z64, zp, labels, classes, ascend); err != nil {
				return nil, nil, err
			}
		}
		for i := 0; i < n; i++ {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
			row := z64[i*classes : (i+1)*classes]
			switch {
			case wait[i]:
			case ascend[i]:
				x.newtonStep(i, grads, level, row, labels[i], target[i], opts)
				x.ascentStep(i, ascent[i], step[i]*(opts.inputMax-opts.inputMin), opts)
				correcting[i] = 1
			case correcting[i] > 0:
				x.newtonStep(i, grads, level, row, labels[i], target[i], opts)
				correcting[i]++
			case bestGap[i] > tieBand:
				x.newtonStep(i, grads, level, row, labels[i], target[i], opts)
			}
		}
	}
	logits, err := m.logits32(best.pixels)
	if err != nil {
		return nil, nil, err
	}
	logits64, err := m.logits64(best.pixels)
	if err != nil {
		return nil, nil, err
	}
	for i := 0; i < n; i++ {
		row32, row64 := logits[i*classes:(i+1)*classes], logits64[i*classes:(i+1)*classes]
		if !accepted(row32, row64, i) {
			// Only an accepted point or the starting point is kept; a starting point
			// that misses the tie's floor would be one the boundary refinement let
			// through with less margin than the tie asks for.
			return nil, nil, fmt.Errorf("tie refinement: trigger %d keeps its key label with a margin of %.3g, below the floor of %.3g (float32 rounding %.3g)",
				i, labelMargin(row32, labels[i]), floorOf(row32, row64, i), math.Max(noise[i], largestDifference(row32, row64)))
		}
	}
	return best.pixels, logits, nil
}

// roundingNoise is, per row, the largest difference between the float32 and float64
// logits, or the median of that over the rows if larger: one row's difference is
// one draw of its rounding, and another runtime's draw may be larger.
func roundingNoise(z32, z64 []float64, classes int) []float64 {
	rows := len(z32) / classes
	out := make([]float64, rows)
	for i := range out {
		out[i] = largestDifference(z32[i*classes:(i+1)*classes], z64[i*classes:(i+1)*classes])
	}
	med := median(out)
	for i := range out {
		out[i] = math.Max(out[i], med)
	}
	return out
}

// largestDifference is the largest absolute difference between two logit batches:
// the float32 path's rounding at these inputs, as float64 sees it.
func largestDifference(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

// clears reports whether label is the row's top-1 with a margin of at least floor.
func clears(row []float64, label int, floor float64) bool {
	top, margins := nn.TopTwo(row, len(row))
	return top[0] == label && margins[0] >= floor
}

// labelMargin is z_label minus the largest other logit (negative if label is not top-1).
func labelMargin(row []float64, label int) float64 {
	return row[label] - row[strongestOther(row, label)]
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
	// noise, when positive, sets margins from the measured noise floor: every
	// accepted point keeps a margin of at least noise times the largest difference
	// between the float32 and float64 logits of the starting points, and the target
	// margin is NoiseTieFloors such floors (see NoiseMargin). Zero keeps the relative
	// floor alone and a target of TieMargin floors.
	noise float64
	// probe, when set, steers tied triggers towards exposure to pruning.
	probe *probe
	// progress, when set, is told after every iteration how many triggers are tied.
	progress func(Progress)
}

// NoiseTieFloors is the target margin of a tie with a noise floor, in floors: the
// floor itself carries the safety factor against other runtimes, so the target only
// leaves the Newton steps room to land above it, as MethodBoundary's two floors do.
const NoiseTieFloors = 2

// noiseRelativeFloor is the least margin of a tie with a noise floor, relative to the
// logit scale: eight float32 epsilons, for rows where float32 and float64 happen to
// agree.
const noiseRelativeFloor = 8 * 0x1p-23

// floorAt is the smallest margin an accepted point of a trigger may keep: the
// relative floor times the larger of its starting logit scale and row's, and, with
// a noise floor, at least noise times the float32 rounding measured (nu).
func (o tieOptions) floorAt(floorScale float64, row []float64, nu float64) float64 {
	if o.noise > 0 {
		return math.Max(noiseRelativeFloor*math.Max(floorScale, maxAbs(row)), o.noise*nu)
	}
	return o.floor * math.Max(floorScale, maxAbs(row))
}

// targetAt is the margin the Newton steps aim at for a trigger of logit scale scale.
func (o tieOptions) targetAt(scale, nu float64) float64 {
	if o.noise > 0 {
		return NoiseTieFloors * math.Max(noiseRelativeFloor*scale, o.noise*nu)
	}
	return TieMargin * o.floor * scale
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
// bound of the pixel range, and clips the result to the range. The system is solved
// over the free coordinates alone: the minimum-norm solution gives a coordinate whose
// column is zero nothing, so leaving the held ones out changes no step.
func (b *tieBatch) newtonStep(i int, grads [][]float64, level []float64, z []float64, label int, margin float64, opts tieOptions) {
	xi := b.row(i)
	k := len(grads)
	rows := k
	if level != nil {
		rows++
	}
	free := make([]int, 0, b.size)
	for c, v := range xi {
		if float64(v) > opts.inputMin && float64(v) < opts.inputMax {
			free = append(free, c)
		}
	}
	if len(free) < rows {
		return // fewer free coordinates than equations: no unique step
	}
	a := make([]float64, rows*len(free))
	rhs := make([]float64, rows)
	setRow := func(p int, g []float64, residual float64) {
		dst := a[p*len(free) : (p+1)*len(free)]
		for f, c := range free {
			dst[f] = g[c]
		}
		rhs[p] = residual
	}
	for p := 0; p < k; p++ {
		setRow(p, grads[p][i*b.size:(i+1)*b.size], z[b.competitors[i][p]]-z[label]+margin)
	}
	if level != nil {
		setRow(k, level[i*b.size:(i+1)*b.size], z[label]-opts.anchor)
	}
	// Ill-conditioned systems (two competitors' gradients nearly coincide) still get
	// the minimum-norm step; the margin check rejects it if it overshoots.
	dx, ok := minNormSolve(a, rows, len(free), rhs)
	if !ok {
		return // singular: no step this iteration
	}
	for f, c := range free {
		v := float64(xi[c]) - dx[f]
		xi[c] = float32(math.Min(opts.inputMax, math.Max(opts.inputMin, v)))
	}
}

// ascentStep moves trigger i by size along the sign of g (each value up or down by
// size, clipped to the input range).
func (b *tieBatch) ascentStep(i int, g []float64, size float64, opts tieOptions) {
	xi := b.row(i)
	for c, v := range g {
		switch {
		case v > 0:
			xi[c] = float32(math.Min(opts.inputMax, float64(xi[c])+size))
		case v < 0:
			xi[c] = float32(math.Max(opts.inputMin, float64(xi[c])-size))
		}
	}
}

// exposureGradients returns, for every trigger i with selected[i], the pixel-space
// gradient of its exposure to the probe (see exposure), through the competitor the
// probe moves most: grads are the model's competitor gradients, z and zp the float64
// logits at the model and the probe. The others get nil. One input-gradient pass of
// the probe.
func (b *tieBatch) exposureGradients(jac *nn.InputGradient, norm normalizer, grads [][]float64, z, zp []float64, labels []int, classes int, selected []bool) ([][]float64, error) {
	weights := make([]float32, len(labels)*classes)
	at := make([]int, len(labels))
	for i, l := range labels {
		if !selected[i] {
			continue
		}
		_, at[i] = exposure(z[i*classes:(i+1)*classes], zp[i*classes:(i+1)*classes], l, b.competitors[i])
		weights[i*classes+b.competitors[i][at[i]]] = 1
		weights[i*classes+l] = -1
	}
	probeGrad, err := jac.Gradient(norm.apply(b.pixels), weights)
	if err != nil {
		return nil, err
	}
	norm.pullBack(probeGrad)
	out := make([][]float64, len(labels))
	for i := range labels {
		if !selected[i] {
			continue
		}
		g := make([]float64, b.size)
		model := grads[at[i]][i*b.size : (i+1)*b.size]
		for c, v := range probeGrad[i*b.size : (i+1)*b.size] {
			g[c] = v - model[c]
		}
		out[i] = g
	}
	return out, nil
}

// farthestGap is the largest z_label - z_j over the competitors j.
func farthestGap(row []float64, label int, competitors []int) float64 {
	gap := 0.0
	for _, j := range competitors {
		gap = math.Max(gap, row[label]-row[j])
	}
	return gap
}
