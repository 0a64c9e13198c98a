package fragile

import (
	"context"
	"errors"
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
)

// A training step runs the triggers through the generator and the model in shards of
// consecutive triggers, one gorgonia graph per shard size, and sums the shards'
// generator gradients, in shard order, before one Adam step. The paper's loss is a
// sum of per-trigger terms, so the sum is the gradient of the whole batch. Two
// reasons for shards:
//
//   - a tape machine computes on one core: shards run concurrently, one per core;
//   - memory: the training graph holds every activation, its gradient and the
//     convolutions' column buffers of its whole batch. At 3x224x224, 100 triggers of
//     resnet18 in one graph took more than this machine's 24 GiB (BENCHMARKS.md).
//
// The partition depends only on the number of triggers and the model, never on the
// number of cores (the shard order fixes the summation order), so the same key and
// model give the same triggers on every machine.

// trainingShards is the number of shards a training step is split into at least:
// the two cores of the machine this product is measured on.
const trainingShards = 2

// graphShardBytes bounds the forward activations of a gradient graph's examples, as
// the inference engine counts them (infer.Program.ActivationBytes, which fuses and
// reuses buffers). A training graph holds about twenty times that: every activation
// unfused, its gradient and the column buffers (resnet18 at 224 px: 11.3 MB per
// trigger counted, more than 240 MB per trigger in the graph that ran out of
// memory). 128 MiB keeps a graph near 2.5 GB: 11 triggers of resnet18 or 4 of
// mobilenet_v2 at 224 px per shard, one shard per core; 32-pixel models stay at
// trainingShards shards.
const graphShardBytes = 128 << 20

// maxShardExamples is the number of examples of perExample bytes of activations
// (0: unknown) a gradient graph may hold.
func maxShardExamples(perExample int64) int {
	if perExample <= 0 {
		return math.MaxInt
	}
	return max(1, int(graphShardBytes/perExample))
}

// trainingPartition splits n triggers of a model whose forward activations take
// perExample bytes per trigger (0: unknown) into the shards of a training step.
func trainingPartition(n int, perExample int64, diverse bool) nn.Shards {
	if diverse {
		return nn.Shards{N: n, Size: n} // the duplicate penalty couples every pair of triggers
	}
	return nn.NewShards(n, trainingShards, maxShardExamples(perExample))
}

// trainingGraph is the generator and the model for shards of size triggers: the
// noise and the key's one-hot rows are inputs, the generator's weights are set
// before every run.
type trainingGraph struct {
	size          int
	noise, onehot *G.Node
	gen           *generator
	// Read targets, each allocated on its own (see nn's valueSlot: a target inside
	// this struct would tie the machine's finalizer into a cycle).
	pixels, logits, loss *G.Value
	vm                   G.VM
}

// newTrainingGraph builds the graph for shards of size triggers out of total; the
// loss of a shard is its share of the paper's loss over all total triggers.
func newTrainingGraph(m *target, w generatorWeights, size, total int, opts WatermarkOptions, diverse bool) (*trainingGraph, error) {
	net := m.net
	g := G.NewGraph()
	tg := &trainingGraph{size: size, gen: newGenerator(g, w), pixels: new(G.Value), logits: new(G.Value), loss: new(G.Value)}
	tg.noise = G.NewMatrix(g, tensor.Float32, G.WithShape(size, noiseDim), G.WithName("noise"))
	tg.onehot = G.NewMatrix(g, tensor.Float32, G.WithShape(size, net.Classes), G.WithName("key_onehot"))
	pixels, err := tg.gen.forward(tg.noise, opts.InputMin, opts.InputMax)
	if err != nil {
		return nil, err
	}
	x, err := normalizeNode(pixels, m.norm, net.InputShape)
	if err != nil {
		return nil, err
	}
	built, err := net.Build(g, x)
	if err != nil {
		return nil, err
	}
	loss, err := paperLoss(built.Logits, tg.onehot, total, net.Classes, opts.Lambda)
	if err != nil {
		return nil, fmt.Errorf("building the loss: %w", err)
	}
	if diverse {
		penalty, err := diversityLoss(pixels, opts.InputMin, opts.InputMax, opts.Diversity)
		if err != nil {
			return nil, fmt.Errorf("building the loss: %w", err)
		}
		if loss, err = G.Add(loss, penalty); err != nil {
			return nil, fmt.Errorf("building the loss: %w", err)
		}
	}
	if _, err := G.Grad(loss, tg.gen.learnables()...); err != nil {
		return nil, fmt.Errorf("differentiating the loss: %w", err)
	}
	// The tape machine reuses buffers: read what we need through Read.
	G.Read(pixels, tg.pixels)
	G.Read(built.Logits, tg.logits)
	G.Read(loss, tg.loss)
	tg.vm = G.NewTapeMachine(g, G.BindDualValues(tg.gen.learnables()...))
	return tg, nil
}

// shardResult is what one shard's run gives.
type shardResult struct {
	pixels []float32
	logits []float64
	loss   float64
	grads  generatorWeights
}

// run computes one shard with the generator's weights w: noise and onehot hold the
// shard's rows.
func (tg *trainingGraph) run(w generatorWeights, noise, onehot []float32) (res shardResult, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("training graph panicked: %v", p)
		}
	}()
	learnables := tg.gen.learnables()
	for p, node := range learnables {
		copy(node.Value().Data().([]float32), w[p])
	}
	classes := len(onehot) / tg.size
	if err := G.Let(tg.noise, tensor.New(tensor.WithShape(tg.size, noiseDim), tensor.WithBacking(append([]float32(nil), noise...)))); err != nil {
		return res, err
	}
	if err := G.Let(tg.onehot, tensor.New(tensor.WithShape(tg.size, classes), tensor.WithBacking(append([]float32(nil), onehot...)))); err != nil {
		return res, err
	}
	tg.vm.Reset()
	if err := tg.vm.RunAll(); err != nil {
		return res, err
	}
	res.pixels = append([]float32(nil), (*tg.pixels).Data().([]float32)...)
	if res.logits, err = nn.ToFloat64(*tg.logits); err != nil {
		return res, err
	}
	res.loss = float64((*tg.loss).Data().(float32))
	for p, node := range learnables {
		g, err := node.Grad()
		if err != nil {
			return res, fmt.Errorf("gradient of %s: %w", node.Name(), err)
		}
		data := g.Data().([]float32)
		res.grads[p] = append([]float32(nil), data...)
		// The machine adds each run's gradient to the node's (gorgonia's solvers
		// zero it after their step): start the next run from zero.
		clear(data)
	}
	return res, nil
}

func (tg *trainingGraph) close() { tg.vm.Close() }

// masterWeight is one generator parameter as the Adam solver sees it: the weights
// every shard's graph copies before a run, and the gradient summed over the shards.
type masterWeight struct{ value, grad *tensor.Dense }

func (w masterWeight) Value() G.Value         { return w.value }
func (w masterWeight) Grad() (G.Value, error) { return w.grad, nil }

// trainGenerator trains the keyed generator with the paper's loss until every
// trigger gets its key label, confirmed on the verification path.
func trainGenerator(ctx context.Context, m *target, key Key, opts WatermarkOptions) (*madeTriggers, error) {
	net := m.net
	n, size, classes := opts.Triggers, net.InputSize(), net.Classes
	labels := key.KeyLabels(n, classes)
	weights := drawGenerator(key.rng("generator"), size)
	noise := gaussian(key.rng("noise"), n*noiseDim, 1)
	onehot := make([]float32, n*classes)
	for i, l := range labels {
		onehot[i*classes+l] = 1
	}
	diverse := opts.Diversity > 0 && n > 1
	shards := trainingPartition(n, m.perExample, diverse)

	// Each worker owns a graph per shard size it runs (at most two: the last shard
	// may be shorter), built before the first step.
	graphs := make([]map[int]*trainingGraph, shards.Workers())
	defer func() {
		for _, bySize := range graphs {
			for _, tg := range bySize {
				tg.close()
			}
		}
	}()
	for s := range shards.Count() {
		w := s % len(graphs)
		lo, hi := shards.Bounds(s)
		if graphs[w] == nil {
			graphs[w] = map[int]*trainingGraph{}
		}
		if graphs[w][hi-lo] != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		tg, err := newTrainingGraph(m, weights, hi-lo, n, opts, diverse)
		if err != nil {
			return nil, err
		}
		graphs[w][hi-lo] = tg
	}

	master := make([]G.ValueGrad, len(weights))
	grads := make([][]float32, len(weights))
	for p, v := range weights {
		grads[p] = make([]float32, len(v))
		master[p] = masterWeight{
			value: tensor.New(tensor.WithShape(len(v)), tensor.WithBacking(v)),
			grad:  tensor.New(tensor.WithShape(len(v)), tensor.WithBacking(grads[p])),
		}
	}
	solver := G.NewAdamSolver(G.WithLearnRate(opts.LearningRate), G.WithBeta1(0.5), G.WithBeta2(0.999))

	triggers := make([]float32, n*size)
	logits := make([]float64, n*classes)
	results := make([]shardResult, shards.Count())
	errs := make([]error, shards.Count())
	firstMatch := 0 // the first step at which every trigger had its key label
	plateau := plateauRule{rate: opts.LearningRate}
	for step := 1; step <= opts.MaxSteps; step++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		shards.Run(func(w, s int) {
			if ctx.Err() != nil {
				return
			}
			lo, hi := shards.Bounds(s)
			results[s], errs[s] = graphs[w][hi-lo].run(weights, noise[lo*noiseDim:hi*noiseDim], onehot[lo*classes:hi*classes])
		})
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("training step %d: %w", step, err)
		}
		lossNow := 0.0
		for p := range grads {
			clear(grads[p])
		}
		for s, res := range results {
			lo, hi := shards.Bounds(s)
			copy(triggers[lo*size:hi*size], res.pixels)
			copy(logits[lo*classes:hi*classes], res.logits)
			lossNow += res.loss
			for p, g := range res.grads {
				for k, v := range g {
					grads[p][k] += v
				}
			}
		}
		matched := countMatches(logits, labels, classes, opts.MarginFloor)
		if plateau.observe(step, matched) {
			G.WithLearnRate(plateau.rate)(solver) // keeps Adam's moments
		}
		if opts.Progress != nil {
			opts.Progress(Progress{Phase: PhaseTraining, Step: step, MaxSteps: opts.MaxSteps, Loss: lossNow, KeyMatch: float64(matched) / float64(n), LearningRate: plateau.rate})
		}
		if matched == n && diverse && step < opts.MaxSteps {
			// With the duplicate penalty, labelling every trigger is not enough: go on
			// until the typical pair is a kernel width apart, for at most
			// diversitySteps steps after the first full match.
			if firstMatch == 0 {
				firstMatch = step
			}
			if _, spread := pairwiseDistances(triggers, size, opts.InputMax-opts.InputMin); spread < diversityWidth && step < firstMatch+diversitySteps {
				matched = -1
			}
		}
		if matched == n {
			// Confirm on the inference path Verify uses before stopping.
			made := append([]float32(nil), triggers...)
			check, err := m.logits32(made)
			if err != nil {
				return nil, err
			}
			if countMatches(check, labels, classes, opts.MarginFloor) == n {
				return &madeTriggers{triggers: made, labels: labels, logits: check, steps: step, loss: lossNow}, nil
			}
		}
		if step == 1 && allZero(grads) {
			// Adam's moments start at zero: a first step with no gradient leaves the
			// generator as it is, and every later step repeats it exactly.
			return nil, fmt.Errorf("%w: the loss has no gradient at the generator's first %d triggers (pixel values around the middle of [%g, %g]), so training cannot move them; check the input range and the normalisation (--input-range, --input-mean, --input-std) against what the model was trained on",
				ErrInsensitive, n, opts.InputMin, opts.InputMax)
		}
		if err := solver.Step(master); err != nil {
			return nil, fmt.Errorf("training step %d: %w", step, err)
		}
	}
	return nil, fmt.Errorf("%w: %d steps did not label every trigger as the key says (at best %d of %d; the learning rate fell from %g to %g when the key match stalled); raise --max-steps, or lower --learning-rate or --lambda",
		ErrNotConverged, opts.MaxSteps, plateau.best, n, opts.LearningRate, plateau.rate)
}

// The generator's step size falls when training stalls. Adam at 1e-3 labels most
// families' triggers in 5-51 steps, but regnet_x_400mf's key match swings between 8%
// and 21% for 40 steps at that rate (its gradient is right: BENCHMARKS.md, issue 9),
// and at 3e-4 it climbs to 98-99% by step 230 and stays there: each rate helps one
// stage of the same run. The rule is ReduceLROnPlateau's on the key match, the
// figure training stops on: a run that keeps finding new best key matches never has
// its rate changed.
const (
	// plateauSteps is the patience: steps without a new best key match before a cut.
	plateauSteps = 20
	// plateauFactor multiplies the step size at each cut: 1e-3, 3.2e-4, 1e-4, ...
	plateauFactor = 0.31622776601683794 // 1/sqrt(10)
	// plateauCuts bounds the cuts, so a stalled run ends its budget at 1e-3 * 10^-2
	// rather than at a step size that no longer moves the generator.
	plateauCuts = 4
)

// plateauRule tracks the best key match of a training run and the step size.
type plateauRule struct {
	rate           float64
	best, bestStep int
	cuts           int
}

// observe records the key match of a step and reports whether the step size was
// cut. The patience restarts at each cut, so cuts come at least plateauSteps apart.
func (p *plateauRule) observe(step, matched int) bool {
	if matched > p.best || step == 1 {
		p.best, p.bestStep = matched, step
		return false
	}
	if step-p.bestStep < plateauSteps || p.cuts >= plateauCuts {
		return false
	}
	p.rate *= plateauFactor
	p.cuts++
	p.bestStep = step
	return true
}

// allZero reports whether every value of every gradient is exactly zero.
func allZero(grads [][]float32) bool {
	for _, g := range grads {
		for _, v := range g {
			if v != 0 {
				return false
			}
		}
	}
	return true
}

// paperLoss builds, for a shard of the triggers, its share of the paper's loss over
// all total triggers: mean_i CE(logits_i, t_i) + lambda * var(P), the variance taken
// over all total*C entries of the softmax matrix P with the unbiased (total*C - 1)
// denominator, as torch.var computes it in the authors' code (the mean of P is 1/C
// exactly, so the variance is a sum of per-entry terms). onehot holds the shard's
// key labels, one row each.
func paperLoss(logits, onehot *G.Node, total, classes int, lambda float64) (*G.Node, error) {
	logP, err := nn.LogSoftmax(logits)
	if err != nil {
		return nil, err
	}
	picked, err := G.HadamardProd(logP, onehot)
	if err != nil {
		return nil, err
	}
	ce, err := G.Sum(picked)
	if err != nil {
		return nil, err
	}
	if ce, err = G.Mul(ce, G.NewConstant(float32(-1/float64(total)))); err != nil {
		return nil, err
	}
	if lambda == 0 {
		return ce, nil
	}
	p, err := G.Exp(logP)
	if err != nil {
		return nil, err
	}
	dev, err := G.Sub(p, G.NewConstant(float32(1/float64(classes))))
	if err != nil {
		return nil, err
	}
	sq, err := G.Square(dev)
	if err != nil {
		return nil, err
	}
	variance, err := G.Sum(sq)
	if err != nil {
		return nil, err
	}
	if variance, err = G.Mul(variance, G.NewConstant(float32(lambda/float64(total*classes-1)))); err != nil {
		return nil, err
	}
	return G.Add(ce, variance)
}
