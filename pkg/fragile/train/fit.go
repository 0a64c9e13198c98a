package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// Optimizer names an update rule.
type Optimizer string

// The optimizers Fit offers.
const (
	SGD  Optimizer = "sgd"  // with momentum Options.Momentum
	Adam Optimizer = "adam" // betas (0.9, 0.999)
)

// Options tune Fit.
type Options struct {
	Steps        int       // minibatch steps (required)
	BatchSize    int       // default 64
	LearningRate float64   // required
	Optimizer    Optimizer // default SGD
	Momentum     float64   // SGD momentum, default 0.9
	WeightDecay  float64   // L2 penalty, default 0
	// Only, when set, names the initializers to train; every other weight stays
	// frozen (last-layer fine-tuning). Empty trains every weight.
	Only []string
}

// Result is a trained model and the loss of every step.
type Result struct {
	Model  []byte    // the input file with new weights
	Losses []float64 // mean cross-entropy of each minibatch, before its update
}

// Fit minimises the cross-entropy of the model on the labelled examples (images
// back to back, each of the model's input size) and returns the same file with
// the new weights. Minibatches walk key-independent permutations drawn from r.
// BatchNormalization running statistics are not trained: the model is fine-tuned
// in inference mode, as an attacker who only has the exported file would.
func Fit(ctx context.Context, model []byte, images []float32, labels []int, opts Options, r *rand.Rand) (*Result, error) {
	if opts.BatchSize == 0 {
		opts.BatchSize = 64
	}
	if opts.Optimizer == "" {
		opts.Optimizer = SGD
	}
	if opts.Momentum == 0 {
		opts.Momentum = 0.9
	}
	if opts.Steps < 1 || !(opts.LearningRate > 0) || opts.BatchSize < 1 {
		return nil, errors.New("training needs positive steps, learning rate and batch size")
	}
	m, err := onnx.Decode(model)
	if err != nil {
		return nil, err
	}
	net, err := nn.Compile(m)
	if err != nil {
		return nil, err
	}
	size := net.InputSize()
	if len(labels) == 0 || len(images) != len(labels)*size {
		return nil, fmt.Errorf("%d values for %d labels: each example needs %d values", len(images), len(labels), size)
	}
	for _, l := range labels {
		if l < 0 || l >= net.Classes {
			return nil, fmt.Errorf("label %d outside the model's %d classes", l, net.Classes)
		}
	}

	bs := opts.BatchSize
	g := G.NewGraph()
	x := net.NewInput(g, tensor.Float32, bs)
	target := G.NewMatrix(g, tensor.Float32, G.WithShape(bs, net.Classes), G.WithName("target"))
	built, err := net.Build(g, x)
	if err != nil {
		return nil, err
	}
	learnables, err := trainable(net, built, opts.Only)
	if err != nil {
		return nil, err
	}
	logP, err := nn.LogSoftmax(built.Logits)
	if err != nil {
		return nil, err
	}
	picked, err := G.HadamardProd(logP, target)
	if err != nil {
		return nil, err
	}
	loss, err := G.Sum(picked)
	if err != nil {
		return nil, err
	}
	if loss, err = G.Mul(loss, G.NewConstant(float32(-1/float64(bs)))); err != nil {
		return nil, err
	}
	if _, err := G.Grad(loss, learnables...); err != nil {
		return nil, fmt.Errorf("differentiating the loss: %w", err)
	}
	var lossVal G.Value
	G.Read(loss, &lossVal)
	vm := G.NewTapeMachine(g, G.BindDualValues(learnables...))
	defer vm.Close()
	solver := newSolver(opts)

	batchX := make([]float32, bs*size)
	batchY := make([]float32, bs*net.Classes)
	order := r.Perm(len(labels))
	next := 0
	res := &Result{}
	for step := 0; step < opts.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		clear(batchY)
		for i := 0; i < bs; i++ {
			if next == len(order) {
				order, next = r.Perm(len(labels)), 0
			}
			k := order[next]
			next++
			copy(batchX[i*size:(i+1)*size], images[k*size:(k+1)*size])
			batchY[i*net.Classes+labels[k]] = 1
		}
		if err := G.Let(x, tensor.New(tensor.WithShape(x.Shape()...), tensor.WithBacking(batchX))); err != nil {
			return nil, err
		}
		if err := G.Let(target, tensor.New(tensor.WithShape(bs, net.Classes), tensor.WithBacking(batchY))); err != nil {
			return nil, err
		}
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			return nil, fmt.Errorf("training step %d: %w", step+1, err)
		}
		l := float64(lossVal.Data().(float32))
		if math.IsNaN(l) || math.IsInf(l, 0) {
			return nil, fmt.Errorf("training diverged at step %d (loss %v): lower the learning rate", step+1, l)
		}
		res.Losses = append(res.Losses, l)
		if err := solver.Step(G.NodesToValueGrads(learnables)); err != nil {
			return nil, fmt.Errorf("training step %d: %w", step+1, err)
		}
	}
	weights := map[string][]float32{}
	for _, w := range learnables {
		weights[w.Name()] = append([]float32(nil), w.Value().Data().([]float32)...)
	}
	if res.Model, err = onnx.ReplaceInitializers(model, weights); err != nil {
		return nil, err
	}
	return res, nil
}

// trainable lists the weight nodes to optimise: every weight the graph reads except
// BatchNormalization's running mean and variance (inputs 3 and 4), or, when only is
// set, the weights it names.
func trainable(net *nn.Network, built *nn.Built, only []string) (G.Nodes, error) {
	frozen := map[string]bool{}
	for _, node := range net.Model().Graph.Nodes {
		if node.OpType == "BatchNormalization" && len(node.Inputs) == 5 {
			frozen[node.Inputs[3]], frozen[node.Inputs[4]] = true, true
		}
	}
	selected := map[string]bool{}
	for _, name := range only {
		if _, ok := built.Weights[name]; !ok || frozen[name] {
			return nil, fmt.Errorf("cannot train %q: not a trainable weight of the model", name)
		}
		selected[name] = true
	}
	var nodes G.Nodes
	for _, w := range built.WeightNodes(net) {
		if !frozen[w.Name()] && (len(only) == 0 || selected[w.Name()]) {
			nodes = append(nodes, w)
		}
	}
	return nodes, nil
}

func newSolver(opts Options) G.Solver {
	var reg []G.SolverOpt
	if opts.WeightDecay > 0 {
		reg = append(reg, G.WithL2Reg(opts.WeightDecay))
	}
	if opts.Optimizer == Adam {
		return G.NewAdamSolver(append(reg, G.WithLearnRate(opts.LearningRate))...)
	}
	return G.NewMomentum(append(reg, G.WithLearnRate(opts.LearningRate), G.WithMomentum(opts.Momentum))...)
}

// Accuracy is the fraction of examples whose top-1 label is the given label,
// evaluated in float32 batches of up to 500.
func Accuracy(model []byte, images []float32, labels []int) (float64, error) {
	m, err := onnx.Decode(model)
	if err != nil {
		return 0, err
	}
	net, err := nn.Compile(m)
	if err != nil {
		return 0, err
	}
	size, n := net.InputSize(), len(labels)
	if n == 0 || len(images) != n*size {
		return 0, fmt.Errorf("%d values for %d labels", len(images), n)
	}
	bs := min(500, n)
	runner, err := nn.NewRunner(net, bs, tensor.Float32)
	if err != nil {
		return 0, err
	}
	defer runner.Close()
	correct := 0
	batch := make([]float32, bs*size)
	for start := 0; start < n; start += bs {
		count := min(bs, n-start)
		clear(batch)
		copy(batch, images[start*size:(start+count)*size])
		logits, err := runner.Logits(batch)
		if err != nil {
			return 0, err
		}
		top, _ := nn.TopTwo(logits, net.Classes)
		for i := 0; i < count; i++ {
			if top[i] == labels[start+i] {
				correct++
			}
		}
	}
	return float64(correct) / float64(n), nil
}
