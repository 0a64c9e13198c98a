package nn

import (
	"errors"
	"fmt"
	"runtime"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Runner evaluates a Network on fixed-size batches, reusing one compiled graph and
// tape machine across calls.
type Runner struct {
	net   *Network
	batch int
	dtype tensor.Dtype
	x     *G.Node
	out   *G.Value // see valueSlot
	vm    G.VM
}

// valueSlot allocates the destination of a G.Read on its own. The read op keeps a
// pointer to it, and the graph keeps the op: were the destination a field of the
// struct that also holds the tape machine, the machine would reach itself, and the
// Go runtime never frees a cycle that contains an object with a finalizer (gorgonia
// sets one on every tape machine). Each Runner would then leak its whole graph and
// every buffer it ever computed: tens of megabytes per runner on mnist-7.
func valueSlot() *G.Value { return new(G.Value) }

// NewRunner compiles net for batches of exactly batch examples in dtype
// (tensor.Float32, as ONNX runtimes compute, or tensor.Float64).
func NewRunner(net *Network, batch int, dtype tensor.Dtype) (*Runner, error) {
	if batch < 1 {
		return nil, fmt.Errorf("batch size %d: must be positive", batch)
	}
	g := G.NewGraph()
	x := net.NewInput(g, dtype, batch)
	built, err := net.Build(g, x)
	if err != nil {
		return nil, err
	}
	r := &Runner{net: net, batch: batch, dtype: dtype, x: x, out: valueSlot()}
	// The tape machine reuses buffers between nodes: read the logits through Read so
	// the value is not overwritten by a later instruction.
	G.Read(built.Logits, r.out)
	r.vm = G.NewTapeMachine(g)
	return r, nil
}

// NewInput adds to g an input node for batches of batch examples in dtype, shaped
// (batch, InputShape...) and named after the model's input, as Build expects.
func (n *Network) NewInput(g *G.ExprGraph, dtype tensor.Dtype, batch int) *G.Node {
	return G.NewTensor(g, dtype, 1+len(n.InputShape), G.WithShape(n.batchShape(batch)...), G.WithName(n.InputName))
}

func (n *Network) batchShape(batch int) []int { return append([]int{batch}, n.InputShape...) }

// binding is a value for an input node of one run.
type binding struct {
	node  *G.Node
	value tensor.Tensor
}

// runOnce binds the inputs and runs the machine once. what names the run in errors,
// and a gorgonia panic becomes an error, so bad input never crashes the caller.
func runOnce(vm G.VM, what string, bindings ...binding) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s panicked: %v", what, p)
		}
	}()
	for _, b := range bindings {
		if err := G.Let(b.node, b.value); err != nil {
			return err
		}
	}
	vm.Reset()
	if err := vm.RunAll(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Batch is the number of examples per call.
func (r *Runner) Batch() int { return r.batch }

// Logits runs the network on batch examples laid out back to back in inputs and
// returns the (batch x classes) logits, row-major.
func (r *Runner) Logits(inputs []float32) (logits []float64, err error) {
	if want := r.batch * r.net.InputSize(); len(inputs) != want {
		return nil, fmt.Errorf("input %s: %d values given, %d examples of shape %v need %d", r.net.InputName, len(inputs), r.batch, r.net.InputShape, want)
	}
	shape := r.net.batchShape(r.batch)
	var value tensor.Tensor
	if r.dtype == tensor.Float64 {
		data := make([]float64, len(inputs))
		for i, v := range inputs {
			data[i] = float64(v)
		}
		value = tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
	} else {
		value = tensor.New(tensor.WithShape(shape...), tensor.WithBacking(append([]float32(nil), inputs...)))
	}
	if err := runOnce(r.vm, "inference", binding{r.x, value}); err != nil {
		return nil, err
	}
	return ToFloat64(*r.out)
}

// Close releases the machine's buffers.
func (r *Runner) Close() { r.vm.Close() }

// ToFloat64 copies a float32 or float64 graph value into a new []float64, so the
// result survives the tape machine's next run reusing the value's buffer.
func ToFloat64(v G.Value) ([]float64, error) {
	switch data := v.Data().(type) {
	case []float32:
		out := make([]float64, len(data))
		for i, x := range data {
			out[i] = float64(x)
		}
		return out, nil
	case []float64:
		return append([]float64(nil), data...), nil
	default:
		return nil, fmt.Errorf("unexpected value type %T", data)
	}
}

// TopTwo returns, for each row of a (rows x classes) matrix, the index of the
// largest value and the gap between the largest and the second largest (the
// top-1/top-2 margin). Ties go to the lower index, as argmax conventionally does.
func TopTwo(logits []float64, classes int) (labels []int, margins []float64) {
	rows := len(logits) / classes
	labels = make([]int, rows)
	margins = make([]float64, rows)
	for i := 0; i < rows; i++ {
		row := logits[i*classes : (i+1)*classes]
		best := 0
		for j := 1; j < classes; j++ {
			if row[j] > row[best] {
				best = j
			}
		}
		second := -1
		for j := 0; j < classes; j++ {
			if j != best && (second < 0 || row[j] > row[second]) {
				second = j
			}
		}
		labels[i] = best
		margins[i] = row[best] - row[second]
	}
	return labels, margins
}

// InputGradient evaluates gradients of weighted sums of logits with respect to the
// inputs, for fixed-size batches, reusing compiled graphs and tape machines.
//
// The batch is split into shards of consecutive examples, run concurrently by
// workers that each own a graph per shard size: a tape machine computes on one core,
// and the tie refinement's input-gradient passes are most of a watermark's time; a
// graph holds every activation and its gradient for its whole batch, which at
// 3x224x224 must be bounded. Examples do not interact and every shard computes an
// example with the same kernels, so a gradient does not depend on the number or
// size of the shards (TestInputGradientShards).
type InputGradient struct {
	net     *Network
	shards  Shards
	workers []map[int]*gradientShard // per worker, a graph per shard size
}

// gradientShard is a graph for shards of batch examples.
type gradientShard struct {
	batch  int
	x      *G.Node
	weight *G.Node
	grad   *G.Value // see valueSlot
	vm     G.VM
}

// NewInputGradient compiles net, in float32, for batches of exactly batch examples,
// over min(GOMAXPROCS, batch) shards.
func NewInputGradient(net *Network, batch int) (*InputGradient, error) {
	return NewInputGradientShards(net, batch, runtime.GOMAXPROCS(0), batch)
}

// NewInputGradientShards is NewInputGradient over at least shards shards of at most
// maxShard examples each, run by min(GOMAXPROCS, shards) workers.
func NewInputGradientShards(net *Network, batch, shards, maxShard int) (*InputGradient, error) {
	if batch < 1 {
		return nil, fmt.Errorf("batch size %d: must be positive", batch)
	}
	ig := &InputGradient{net: net, shards: NewShards(batch, shards, maxShard)}
	ig.workers = make([]map[int]*gradientShard, ig.shards.Workers())
	for s := range ig.shards.Count() {
		w := s % len(ig.workers)
		lo, hi := ig.shards.Bounds(s)
		if ig.workers[w] == nil {
			ig.workers[w] = map[int]*gradientShard{}
		}
		if ig.workers[w][hi-lo] != nil {
			continue
		}
		sh, err := newGradientShard(net, hi-lo)
		if err != nil {
			ig.Close()
			return nil, err
		}
		ig.workers[w][hi-lo] = sh
	}
	return ig, nil
}

func newGradientShard(net *Network, batch int) (*gradientShard, error) {
	g := G.NewGraph()
	x := net.NewInput(g, tensor.Float32, batch)
	built, err := net.Build(g, x)
	if err != nil {
		return nil, err
	}
	weight := G.NewMatrix(g, tensor.Float32, G.WithShape(batch, net.Classes), G.WithName("logit_weights"))
	weighted, err := G.HadamardProd(built.Logits, weight)
	if err != nil {
		return nil, err
	}
	sum, err := G.Sum(weighted)
	if err != nil {
		return nil, err
	}
	grads, err := G.Grad(sum, x)
	if err != nil {
		return nil, fmt.Errorf("differentiating the logits: %w", err)
	}
	sh := &gradientShard{batch: batch, x: x, weight: weight, grad: valueSlot()}
	G.Read(grads[0], sh.grad)
	sh.vm = G.NewTapeMachine(g)
	return sh, nil
}

// Gradient returns d/dx of sum_i sum_c weights[i*classes+c] * logit_ic at the given
// inputs (batch examples back to back), laid out as the inputs are. Each example's
// block is the gradient of its own weighted logits: examples do not interact.
func (ig *InputGradient) Gradient(inputs []float32, weights []float32) ([]float64, error) {
	size, classes, batch := ig.net.InputSize(), ig.net.Classes, ig.shards.N
	if len(inputs) != batch*size || len(weights) != batch*classes {
		return nil, fmt.Errorf("gradient: %d inputs and %d weights given, want %d and %d", len(inputs), len(weights), batch*size, batch*classes)
	}
	grad := make([]float64, len(inputs))
	errs := make([]error, ig.shards.Count())
	ig.shards.Run(func(w, s int) {
		lo, hi := ig.shards.Bounds(s)
		errs[s] = ig.workers[w][hi-lo].gradient(ig.net, grad[lo*size:hi*size], inputs[lo*size:hi*size], weights[lo*classes:hi*classes])
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return grad, nil
}

// gradient computes the shard's examples' gradients into dst.
func (sh *gradientShard) gradient(net *Network, dst []float64, inputs, weights []float32) error {
	err := runOnce(sh.vm, "gradient",
		binding{sh.x, tensor.New(tensor.WithShape(net.batchShape(sh.batch)...), tensor.WithBacking(append([]float32(nil), inputs...)))},
		binding{sh.weight, tensor.New(tensor.WithShape(sh.batch, net.Classes), tensor.WithBacking(append([]float32(nil), weights...)))})
	if err != nil {
		return err
	}
	g, err := ToFloat64(*sh.grad)
	if err != nil {
		return err
	}
	copy(dst, g)
	return nil
}

// Close releases the machines' buffers.
func (ig *InputGradient) Close() {
	for _, graphs := range ig.workers {
		for _, sh := range graphs {
			sh.vm.Close()
		}
	}
	ig.workers = nil
}
