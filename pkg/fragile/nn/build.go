package nn

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// Built is a classifier added to a caller's expression graph.
type Built struct {
	// Logits is the (batch, classes) output before any final Softmax.
	Logits *G.Node
	// Weights maps each initializer the graph uses to its node, so callers can take
	// gradients with respect to weights or replace their values.
	Weights map[string]*G.Node
	// Units are the outputs of the ReLU-type nodes (Relu, LeakyRelu, Clip) computed
	// from the input, in graph order: an element above zero is an active unit.
	Units []*G.Node
}

// unitOps are the ops whose outputs Built.Units lists.
var unitOps = map[string]bool{"Relu": true, "LeakyRelu": true, "Clip": true}

// WeightNodes returns the weight nodes in the model's initializer order.
func (b *Built) WeightNodes(n *Network) G.Nodes {
	var nodes G.Nodes
	for _, name := range n.paramOrder {
		if w, ok := b.Weights[name]; ok {
			nodes = append(nodes, w)
		}
	}
	return nodes
}

// opBuilder adds one ONNX op to the graph under construction. Its first inputs
// inputs (the data it computes on; -1 for all of them) are fetched as graph nodes
// before build runs, and so are up to optional more when the node names them (a
// nil entry when it does not); the rest (shapes, axes, bounds) are constants the
// op reads itself.
type opBuilder struct {
	inputs, optional int
	build            func(b *builder, node *onnx.Node, in []*G.Node) ([]*G.Node, error)
}

// one wraps a single-output build function.
func one(inputs, optional int, fn func(b *builder, node *onnx.Node, in []*G.Node) (*G.Node, error)) opBuilder {
	return opBuilder{inputs: inputs, optional: optional, build: func(b *builder, node *onnx.Node, in []*G.Node) ([]*G.Node, error) {
		y, err := fn(b, node, in)
		return []*G.Node{y}, err
	}}
}

// builder carries the state of one Build call.
type builder struct {
	net   *Network
	g     *G.ExprGraph
	dtype tensor.Dtype
	batch int
	// values maps ONNX tensor names to graph nodes.
	values map[string]*G.Node
	// dynamic marks the values computed from the input (as opposed to weights only);
	// only those carry the batch dimension.
	dynamic map[string]bool
	weights map[string]*G.Node
	// known holds the integer tensors known while building (initializers, Constant
	// nodes and the shape arithmetic folded from them); they never become graph nodes.
	known map[string]*intTensor
	// floats holds the values of FLOAT constants that ops read as attributes (Clip
	// bounds, Pad's value, Pow's exponent), from Constant nodes and Casts.
	floats map[string][]float64
}

// Build adds the classifier to g, reading its input from x, which must have shape
// (batch, InputShape...) and dtype Float32 or Float64; weights are converted to
// x's dtype.
func (n *Network) Build(g *G.ExprGraph, x *G.Node) (built *Built, err error) {
	want := append([]int{x.Shape()[0]}, n.InputShape...)
	if !x.Shape().Eq(tensor.Shape(want)) {
		return nil, fmt.Errorf("input %s: shape %v given, the model takes (batch, %v)", n.InputName, x.Shape(), n.InputShape)
	}
	if dt := x.Dtype(); dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, fmt.Errorf("input %s: dtype %v, want float32 or float64", n.InputName, dt)
	}
	b := &builder{
		net: n, g: g, dtype: x.Dtype(), batch: x.Shape()[0],
		values:  map[string]*G.Node{n.InputName: x},
		dynamic: map[string]bool{n.InputName: true},
		weights: map[string]*G.Node{},
		known:   map[string]*intTensor{},
		floats:  map[string][]float64{},
	}
	for name, t := range n.consts {
		b.known[name] = &intTensor{shape: intDims(t.Dims), data: t.Int64}
	}
	var logits *G.Node
	var units []*G.Node
	for i := range n.model.Graph.Nodes {
		node := &n.model.Graph.Nodes[i]
		if n.softmaxOutput && len(node.Outputs) == 1 && node.Outputs[0] == n.OutputName {
			// The final Softmax: keep its input as the logits, which are what the
			// training loss wants and what top-1 verification compares (the argmax
			// is the same, the precision better).
			if logits, err = b.input(node, 0); err != nil {
				return nil, err
			}
			break
		}
		if err := b.apply(node); err != nil {
			return nil, err
		}
		if out := node.Outputs[0]; unitOps[node.OpType] && b.dynamic[out] {
			units = append(units, b.values[out])
		}
	}
	if logits == nil {
		var ok bool
		if logits, ok = b.values[n.OutputName]; !ok {
			return nil, fmt.Errorf("output %s is never computed", n.OutputName)
		}
	}
	shape := logits.Shape()
	if len(shape) != 2 || shape[0] != b.batch {
		return nil, fmt.Errorf("%w: output %s has shape %v, a classifier's must be (batch, classes)", ErrUnsupported, n.OutputName, shape)
	}
	return &Built{Logits: logits, Weights: b.weights, Units: units}, nil
}

// apply adds one node, naming the node and op in any error; a gorgonia panic
// becomes such an error too.
func (b *builder) apply(node *onnx.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("node %s: op %s: %v", node.Label(), node.OpType, r)
		}
	}()
	if err := b.add(node); err != nil {
		return fmt.Errorf("node %s: op %s: %w", node.Label(), node.OpType, err)
	}
	return nil
}

// add folds node into constants when it is shape arithmetic on known integers,
// and otherwise fetches its inputs and runs its op builder.
func (b *builder) add(node *onnx.Node) error {
	if folded, err := b.fold(node); folded || err != nil {
		return err
	}
	op, ok := builders[node.OpType]
	if !ok {
		return unsupported("only constant integer inputs are supported")
	}
	required := op.inputs
	if required < 0 {
		required = len(node.Inputs)
	}
	in := make([]*G.Node, 0, required+op.optional)
	for i := range required + op.optional {
		if i >= required && (i >= len(node.Inputs) || node.Inputs[i] == "") {
			in = append(in, nil)
			continue
		}
		x, err := b.input(node, i)
		if err != nil {
			return err
		}
		in = append(in, x)
	}
	outs, err := op.build(b, node, in)
	if err != nil {
		return err
	}
	dynamic := b.isDynamic(node)
	for i, y := range outs {
		if i < len(node.Outputs) && node.Outputs[i] != "" {
			b.values[node.Outputs[i]] = y
			b.dynamic[node.Outputs[i]] = dynamic
		}
	}
	return nil
}

// input returns the graph node for the i-th input of node: a value computed
// before, or a weight, added to the graph on first use.
func (b *builder) input(node *onnx.Node, i int) (*G.Node, error) {
	if i >= len(node.Inputs) || node.Inputs[i] == "" {
		return nil, fmt.Errorf("missing input %d", i)
	}
	name := node.Inputs[i]
	if v, ok := b.values[name]; ok {
		return v, nil
	}
	if t, ok := b.net.params[name]; ok {
		w := G.NewTensor(b.g, b.dtype, len(t.Dims), G.WithShape(intDims(t.Dims)...), G.WithName(name), G.WithValue(b.tensorValue(intDims(t.Dims), float64s(t.Float))))
		if len(t.Dims) == 0 {
			w = G.NewScalar(b.g, b.dtype, G.WithName(name), G.WithValue(b.scalar(float64(t.Float[0]))))
		}
		b.values[name] = w
		b.weights[name] = w
		return w, nil
	}
	if _, ok := b.known[name]; ok {
		return nil, unsupported("input %q is an integer tensor; only FLOAT data flows through %s", name, node.OpType)
	}
	return nil, fmt.Errorf("input %q is neither computed before this node nor a FLOAT initializer", name)
}

// isDynamic reports whether any of node's inputs depends on the model input.
func (b *builder) isDynamic(node *onnx.Node) bool {
	for _, in := range node.Inputs {
		if b.dynamic[in] {
			return true
		}
	}
	return false
}

// ints reads a constant integer input (a shape, axes, pads), or reports that
// it is not one.
func (b *builder) ints(node *onnx.Node, i int) ([]int64, error) {
	if i >= len(node.Inputs) || node.Inputs[i] == "" {
		return nil, fmt.Errorf("missing input %d", i)
	}
	if t, ok := b.known[node.Inputs[i]]; ok {
		return t.data, nil
	}
	return nil, unsupported("input %q must be a constant integer tensor", node.Inputs[i])
}

// optionalInts is ints for an input the node may leave out (ok false then).
func (b *builder) optionalInts(node *onnx.Node, i int) (v []int64, ok bool, err error) {
	if i >= len(node.Inputs) || node.Inputs[i] == "" {
		return nil, false, nil
	}
	v, err = b.ints(node, i)
	return v, err == nil, err
}

// optionalScalar reads a constant FLOAT scalar input (Clip's bounds, Pad's value):
// an initializer or a Constant node. ok is false when the node leaves it out.
func (b *builder) optionalScalar(node *onnx.Node, i int) (v float64, ok bool, err error) {
	if i >= len(node.Inputs) || node.Inputs[i] == "" {
		return 0, false, nil
	}
	name := node.Inputs[i]
	values, found := b.floats[name]
	if t, isParam := b.net.params[name]; isParam {
		values, found = float64s(t.Float), true
	}
	if !found {
		return 0, false, unsupported("input %q must be a constant", name)
	}
	if len(values) != 1 {
		return 0, false, unsupported("input %q holds %d values: only a constant scalar is supported", name, len(values))
	}
	return values[0], true, nil
}

func (b *builder) tensorValue(shape []int, values []float64) tensor.Tensor {
	if b.dtype == tensor.Float64 {
		return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(append([]float64(nil), values...)))
	}
	data := make([]float32, len(values))
	for i, v := range values {
		data[i] = float32(v)
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
}

// constantNode adds a FLOAT constant of the given shape (a scalar when shape is empty).
func (b *builder) constantNode(name string, shape []int, values []float64) *G.Node {
	if len(shape) == 0 {
		return G.NewScalar(b.g, b.dtype, G.WithName(name), G.WithValue(b.scalar(values[0])))
	}
	return G.NewTensor(b.g, b.dtype, len(shape), G.WithShape(shape...), G.WithName(name), G.WithValue(b.tensorValue(shape, values)))
}

func (b *builder) scalar(v float64) any {
	if b.dtype == tensor.Float64 {
		return v
	}
	return float32(v)
}

func (b *builder) constant(v float64) *G.Node {
	return G.NewConstant(b.scalar(v))
}

func float64s(f []float32) []float64 {
	out := make([]float64, len(f))
	for i, v := range f {
		out[i] = float64(v)
	}
	return out
}

func intDims(d []int64) []int {
	out := make([]int, len(d))
	for i, v := range d {
		out[i] = int(v)
	}
	return out
}

func ones(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = 1
	}
	return s
}

// attrInts returns an INTS attribute, or def when absent.
func attrInts(node *onnx.Node, name string, def []int) []int {
	if a := node.Attr(name); a != nil {
		return intDims(a.Ints)
	}
	return def
}

func attrInt(node *onnx.Node, name string, def int64) int64 {
	if a := node.Attr(name); a != nil {
		return a.I
	}
	return def
}

func attrFloat(node *onnx.Node, name string, def float32) float32 {
	if a := node.Attr(name); a != nil {
		return a.F
	}
	return def
}

func attrString(node *onnx.Node, name, def string) string {
	if a := node.Attr(name); a != nil {
		return string(a.S)
	}
	return def
}

// axis resolves a possibly negative axis against rank.
func axis(a, rank int) (int, error) {
	if a < 0 {
		a += rank
	}
	if a < 0 || a >= rank {
		return 0, fmt.Errorf("axis %d out of range for rank %d", a, rank)
	}
	return a, nil
}

// probeClasses builds the network once, at the batch size the file declares (1
// when symbolic), to validate every node's shapes and read the number of classes.
func (n *Network) probeClasses() (int, error) {
	g := G.NewGraph()
	x := n.NewInput(g, tensor.Float32, max(1, n.fixedBatch))
	built, err := n.Build(g, x)
	if err != nil {
		return 0, err
	}
	classes := built.Logits.Shape()[1]
	if classes < 2 || classes > math.MaxInt32 {
		return 0, fmt.Errorf("%w: output %s has %d classes", ErrUnsupported, n.OutputName, classes)
	}
	return classes, nil
}

// unsupported reports a model feature this package cannot run. Its text is the
// message alone (apply prefixes the node and op), and it wraps ErrUnsupported, as
// Compile promises for every such error.
func unsupported(format string, args ...any) error {
	return &unsupportedError{msg: fmt.Sprintf(format, args...)}
}

type unsupportedError struct{ msg string }

func (e *unsupportedError) Error() string { return e.msg }
func (e *unsupportedError) Unwrap() error { return ErrUnsupported }
