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

// opBuilder adds one ONNX node to the graph under construction.
type opBuilder func(b *builder, node *onnx.Node) error

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

// apply runs one op builder, turning a gorgonia panic into an error naming the node.
func (b *builder) apply(node *onnx.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("node %s: op %s: %v", node.Label(), node.OpType, r)
		}
	}()
	if err := builders[node.OpType](b, node); err != nil {
		return fmt.Errorf("node %s: op %s: %w", node.Label(), node.OpType, err)
	}
	return nil
}

// input returns the graph node for the i-th input of node.
func (b *builder) input(node *onnx.Node, i int) (*G.Node, error) {
	if i >= len(node.Inputs) || node.Inputs[i] == "" {
		return nil, fmt.Errorf("missing input %d", i)
	}
	name := node.Inputs[i]
	if v, ok := b.values[name]; ok {
		return v, nil
	}
	if t, ok := b.net.params[name]; ok {
		w := G.NewTensor(b.g, b.dtype, len(t.Dims), G.WithShape(intDims(t.Dims)...), G.WithName(name), G.WithValue(b.tensorValue(t)))
		if len(t.Dims) == 0 {
			w = G.NewScalar(b.g, b.dtype, G.WithName(name), G.WithValue(b.scalar(float64(t.Float[0]))))
		}
		b.values[name] = w
		b.weights[name] = w
		return w, nil
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

func (b *builder) set(node *onnx.Node, v *G.Node) {
	b.values[node.Outputs[0]] = v
	if b.isDynamic(node) {
		b.dynamic[node.Outputs[0]] = true
	}
}

// ints reads an INT64 tensor input (a Reshape shape), from an initializer or a Constant node.
func (b *builder) ints(node *onnx.Node, i int) ([]int64, error) {
	if i >= len(node.Inputs) {
		return nil, fmt.Errorf("missing input %d", i)
	}
	if t, ok := b.net.consts[node.Inputs[i]]; ok {
		return t.Int64, nil
	}
	return nil, fmt.Errorf("input %q must be a constant INT64 tensor", node.Inputs[i])
}

func (b *builder) tensorValue(t *onnx.Tensor) tensor.Tensor {
	shape := intDims(t.Dims)
	if b.dtype == tensor.Float64 {
		data := make([]float64, len(t.Float))
		for i, v := range t.Float {
			data[i] = float64(v)
		}
		return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
	}
	data := append([]float32(nil), t.Float...)
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
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

func intDims(d []int64) []int {
	out := make([]int, len(d))
	for i, v := range d {
		out[i] = int(v)
	}
	return out
}

// ---- ops -----------------------------------------------------------------------

func buildIdentity(b *builder, node *onnx.Node) error {
	x, err := b.input(node, 0)
	if err != nil {
		return err
	}
	b.set(node, x)
	return nil
}

func buildConstant(b *builder, node *onnx.Node) error {
	a := node.Attr("value")
	if a == nil || a.T == nil {
		return unsupported("only the tensor form of Constant is supported")
	}
	t := *a.T
	t.Name = node.Outputs[0]
	switch t.DataType {
	case onnx.DataTypeInt64, onnx.DataTypeInt32:
		// Resolved by Compile into the network's constants.
	case onnx.DataTypeFloat:
		b.values[t.Name] = G.NewTensor(b.g, b.dtype, len(t.Dims), G.WithShape(intDims(t.Dims)...), G.WithName(t.Name), G.WithValue(b.tensorValue(&t)))
	default:
		return unsupported("constant of type %s is not supported", t.DataType)
	}
	return nil
}

func buildRelu(b *builder, node *onnx.Node) error {
	return b.unary(node, G.Rectify)
}

func buildSigmoid(b *builder, node *onnx.Node) error { return b.unary(node, G.Sigmoid) }
func buildTanh(b *builder, node *onnx.Node) error    { return b.unary(node, G.Tanh) }

// buildLeakyRelu computes max(x, 0) + alpha*min(x, 0) = relu(x) - alpha*relu(-x),
// which has a gradient, unlike gorgonnx's LeakyRelu.
func buildLeakyRelu(b *builder, node *onnx.Node) error {
	alpha := 0.01
	if a := node.Attr("alpha"); a != nil {
		alpha = float64(a.F)
	}
	return b.unary(node, func(x *G.Node) (*G.Node, error) {
		pos, err := G.Rectify(x)
		if err != nil {
			return nil, err
		}
		negX, err := G.Neg(x)
		if err != nil {
			return nil, err
		}
		neg, err := G.Rectify(negX)
		if err != nil {
			return nil, err
		}
		scaled, err := G.Mul(neg, b.constant(alpha))
		if err != nil {
			return nil, err
		}
		return G.Sub(pos, scaled)
	})
}

func (b *builder) unary(node *onnx.Node, fn func(*G.Node) (*G.Node, error)) error {
	x, err := b.input(node, 0)
	if err != nil {
		return err
	}
	y, err := fn(x)
	if err != nil {
		return err
	}
	b.set(node, y)
	return nil
}

// buildElementwise applies Add, Sub, Mul or Div with ONNX (numpy) broadcasting.
func buildElementwise(b *builder, node *onnx.Node) error {
	x, err := b.input(node, 0)
	if err != nil {
		return err
	}
	y, err := b.input(node, 1)
	if err != nil {
		return err
	}
	z, err := broadcastBinary(node.OpType, x, y)
	if err != nil {
		return err
	}
	b.set(node, z)
	return nil
}

func broadcastBinary(op string, x, y *G.Node) (*G.Node, error) {
	var err error
	xs, ys := x.Shape(), y.Shape()
	// Align ranks by prepending ones, as numpy does.
	if len(xs) < len(ys) {
		if x, err = G.Reshape(x, append(ones(len(ys)-len(xs)), xs...)); err != nil {
			return nil, err
		}
	} else if len(ys) < len(xs) {
		if y, err = G.Reshape(y, append(ones(len(xs)-len(ys)), ys...)); err != nil {
			return nil, err
		}
	}
	xs, ys = x.Shape(), y.Shape()
	var left, right []byte
	for i := range xs {
		switch {
		case xs[i] == ys[i]:
		case xs[i] == 1:
			left = append(left, byte(i))
		case ys[i] == 1:
			right = append(right, byte(i))
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", xs, ys)
		}
	}
	if left == nil && right == nil {
		switch op {
		case "Add":
			return G.Add(x, y)
		case "Sub":
			return G.Sub(x, y)
		case "Mul":
			return G.HadamardProd(x, y)
		default:
			return G.HadamardDiv(x, y)
		}
	}
	switch op {
	case "Add":
		return G.BroadcastAdd(x, y, left, right)
	case "Sub":
		return G.BroadcastSub(x, y, left, right)
	case "Mul":
		return G.BroadcastHadamardProd(x, y, left, right)
	default:
		return G.BroadcastHadamardDiv(x, y, left, right)
	}
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

// spatialPads resolves ONNX auto_pad / pads into one symmetric padding per spatial
// axis, which is what gorgonia's Conv2d and MaxPool2D take.
func spatialPads(node *onnx.Node, in, kernel, strides, dilations []int) ([]int, error) {
	pads := attrInts(node, "pads", make([]int, 2*len(kernel)))
	autoPad := "NOTSET"
	if a := node.Attr("auto_pad"); a != nil {
		autoPad = string(a.S)
	}
	if len(pads) != 2*len(kernel) {
		return nil, fmt.Errorf("pads %v does not match kernel %v", pads, kernel)
	}
	switch autoPad {
	case "NOTSET", "":
	case "VALID":
		pads = make([]int, 2*len(kernel))
	case "SAME_UPPER", "SAME_LOWER":
		for i := range kernel {
			out := (in[i] + strides[i] - 1) / strides[i]
			total := max(0, (out-1)*strides[i]+(kernel[i]-1)*dilations[i]+1-in[i])
			small, big := total/2, total-total/2
			if autoPad == "SAME_UPPER" {
				pads[i], pads[i+len(kernel)] = small, big
			} else {
				pads[i], pads[i+len(kernel)] = big, small
			}
		}
	default:
		return nil, unsupported("auto_pad %q is not supported", autoPad)
	}
	sym := make([]int, len(kernel))
	for i := range kernel {
		if pads[i] != pads[i+len(kernel)] {
			return nil, unsupported("asymmetric padding %v is not supported", pads)
		}
		sym[i] = pads[i]
	}
	return sym, nil
}

func buildConv(b *builder, node *onnx.Node) error {
	x, err := b.input(node, 0)
	if err != nil {
		return err
	}
	w, err := b.input(node, 1)
	if err != nil {
		return err
	}
	if x.Dims() != 4 || w.Dims() != 4 {
		return unsupported("only 2-D convolution (4-D tensors) is supported, got input %v and weight %v", x.Shape(), w.Shape())
	}
	if g := attrInt(node, "group", 1); g != 1 {
		return unsupported("group=%d is not supported", g)
	}
	kernel := attrInts(node, "kernel_shape", w.Shape()[2:])
	strides := attrInts(node, "strides", []int{1, 1})
	dilations := attrInts(node, "dilations", []int{1, 1})
	pads, err := spatialPads(node, x.Shape()[2:], kernel, strides, dilations)
	if err != nil {
		return err
	}
	y, err := G.Conv2d(x, w, tensor.Shape(kernel), pads, strides, dilations)
	if err != nil {
		return err
	}
	if len(node.Inputs) > 2 && node.Inputs[2] != "" {
		bias, err := b.input(node, 2)
		if err != nil {
			return err
		}
		if bias, err = G.Reshape(bias, tensor.Shape{1, bias.Shape().TotalSize(), 1, 1}); err != nil {
			return err
		}
		if y, err = broadcastBinary("Add", y, bias); err != nil {
			return err
		}
	}
	b.set(node, y)
	return nil
}

func buildMaxPool(b *builder, node *onnx.Node) error {
	x, err := b.input(node, 0)
	if err != nil {
		return err
	}
	if x.Dims() != 4 {
		return unsupported("only 2-D pooling (4-D tensors) is supported, got %v", x.Shape())
	}
	if attrInt(node, "ceil_mode", 0) != 0 {
		return unsupported("ceil_mode=1 is not supported")
	}
	if len(node.Outputs) > 1 && node.Outputs[1] != "" {
		return unsupported("the Indices output is not supported")
	}
	kernel := attrInts(node, "kernel_shape", nil)
	if len(kernel) != 2 {
		return unsupported("kernel_shape %v: a 2-D kernel is required", kernel)
	}
	strides := attrInts(node, "strides", []int{1, 1})
	dilations := attrInts(node, "dilations", []int{1, 1})
	if dilations[0] != 1 || dilations[1] != 1 {
		return unsupported("dilations %v are not supported", dilations)
	}
	pads, err := spatialPads(node, x.Shape()[2:], kernel, strides, dilations)
	if err != nil {
		return err
	}
	y, err := G.MaxPool2D(x, tensor.Shape(kernel), pads, strides)
	if err != nil {
		return err
	}
	b.set(node, y)
	return nil
}

func buildMatMul(b *builder, node *onnx.Node) error {
	x, err := b.input(node, 0)
	if err != nil {
		return err
	}
	w, err := b.input(node, 1)
	if err != nil {
		return err
	}
	if x.Dims() != 2 || w.Dims() != 2 {
		return unsupported("only 2-D MatMul is supported, got %v and %v", x.Shape(), w.Shape())
	}
	y, err := G.Mul(x, w)
	if err != nil {
		return err
	}
	b.set(node, y)
	return nil
}

// buildGemm computes alpha*A'*B' + beta*C from MatMul, Transpose and broadcasting
// Add, all of which have gradients.
func buildGemm(b *builder, node *onnx.Node) error {
	a, err := b.input(node, 0)
	if err != nil {
		return err
	}
	w, err := b.input(node, 1)
	if err != nil {
		return err
	}
	if a.Dims() != 2 || w.Dims() != 2 {
		return fmt.Errorf("Gemm needs 2-D inputs, got %v and %v", a.Shape(), w.Shape())
	}
	if attrInt(node, "transA", 0) != 0 {
		if a, err = G.Transpose(a, 1, 0); err != nil {
			return err
		}
	}
	if attrInt(node, "transB", 0) != 0 {
		if w, err = G.Transpose(w, 1, 0); err != nil {
			return err
		}
	}
	y, err := G.Mul(a, w)
	if err != nil {
		return err
	}
	if alpha := attrFloat(node, "alpha", 1); alpha != 1 {
		if y, err = G.Mul(y, b.constant(float64(alpha))); err != nil {
			return err
		}
	}
	if len(node.Inputs) > 2 && node.Inputs[2] != "" {
		c, err := b.input(node, 2)
		if err != nil {
			return err
		}
		if beta := attrFloat(node, "beta", 1); beta != 1 {
			if c, err = G.Mul(c, b.constant(float64(beta))); err != nil {
				return err
			}
		}
		if y, err = broadcastBinary("Add", y, c); err != nil {
			return err
		}
	}
	b.set(node, y)
	return nil
}

func buildFlatten(b *builder, node *onnx.Node) error {
	x, err := b.input(node, 0)
	if err != nil {
		return err
	}
	axis := int(attrInt(node, "axis", 1))
	shape := x.Shape()
	if axis < 0 {
		axis += len(shape)
	}
	if axis < 0 || axis > len(shape) {
		return fmt.Errorf("axis %d out of range for shape %v", axis, shape)
	}
	outer := 1
	for _, d := range shape[:axis] {
		outer *= d
	}
	y, err := G.Reshape(x, tensor.Shape{outer, shape.TotalSize() / outer})
	if err != nil {
		return err
	}
	b.set(node, y)
	return nil
}

// buildReshape reshapes with ONNX semantics (0 copies a dimension, -1 infers one).
// When the data depends on the model input and the target's first dimension is the
// batch size the file was exported with (mnist-7 bakes in 1x256), that dimension is
// taken as the batch, so the model runs at any batch size.
func buildReshape(b *builder, node *onnx.Node) error {
	x, err := b.input(node, 0)
	if err != nil {
		return err
	}
	target, err := b.ints(node, 1)
	if err != nil {
		return err
	}
	in := x.Shape()
	shape := make([]int, len(target))
	infer := -1
	known := 1
	for i, d := range target {
		switch {
		case i == 0 && b.dynamic[node.Inputs[0]] && b.net.fixedBatch > 0 && int(d) == b.net.fixedBatch:
			shape[i] = b.batch
		case d == 0:
			if i >= len(in) {
				return fmt.Errorf("shape %v copies dimension %d of %v", target, i, in)
			}
			shape[i] = in[i]
		case d == -1:
			if infer >= 0 {
				return fmt.Errorf("shape %v has more than one -1", target)
			}
			infer = i
			continue
		case d < 0:
			return fmt.Errorf("invalid shape %v", target)
		default:
			shape[i] = int(d)
		}
		known *= shape[i]
	}
	if infer >= 0 {
		if known == 0 || in.TotalSize()%known != 0 {
			return fmt.Errorf("cannot reshape %v to %v", in, target)
		}
		shape[infer] = in.TotalSize() / known
		known *= shape[infer]
	}
	if known != in.TotalSize() {
		return fmt.Errorf("cannot reshape %v (%d values) to %v", in, in.TotalSize(), shape)
	}
	y, err := G.Reshape(x, tensor.Shape(shape))
	if err != nil {
		return err
	}
	b.set(node, y)
	return nil
}

// buildBatchNorm is inference-mode batch normalisation on any rank >= 2:
// y = x*s + (bias - mean*s) with s = scale/sqrt(var+eps), per channel (axis 1).
// Scale and bias stay graph nodes so attack tools get their gradients.
func buildBatchNorm(b *builder, node *onnx.Node) error {
	if len(node.Outputs) > 1 {
		for _, o := range node.Outputs[1:] {
			if o != "" {
				return unsupported("training-mode outputs (running mean/var) are not supported")
			}
		}
	}
	x, err := b.input(node, 0)
	if err != nil {
		return err
	}
	var in [4]*G.Node // scale, bias, mean, var
	for i := range in {
		if in[i], err = b.input(node, i+1); err != nil {
			return err
		}
	}
	eps := float64(attrFloat(node, "epsilon", 1e-5))
	if x.Dims() < 2 {
		return fmt.Errorf("input %v has no channel axis", x.Shape())
	}
	channels := x.Shape()[1]
	shape := ones(x.Dims())
	shape[1] = channels
	std, err := G.Add(in[3], b.constant(eps))
	if err != nil {
		return err
	}
	if std, err = G.Sqrt(std); err != nil {
		return err
	}
	s, err := G.HadamardDiv(in[0], std)
	if err != nil {
		return err
	}
	meanS, err := G.HadamardProd(in[2], s)
	if err != nil {
		return err
	}
	shift, err := G.Sub(in[1], meanS)
	if err != nil {
		return err
	}
	if s, err = G.Reshape(s, tensor.Shape(shape)); err != nil {
		return err
	}
	if shift, err = G.Reshape(shift, tensor.Shape(shape)); err != nil {
		return err
	}
	y, err := broadcastBinary("Mul", x, s)
	if err != nil {
		return err
	}
	if y, err = broadcastBinary("Add", y, shift); err != nil {
		return err
	}
	b.set(node, y)
	return nil
}

// buildSoftmax handles a Softmax inside the graph (a final one is skipped by Build).
func buildSoftmax(b *builder, node *onnx.Node) error {
	x, err := b.input(node, 0)
	if err != nil {
		return err
	}
	axis := int(attrInt(node, "axis", 1))
	if axis < 0 {
		axis += x.Dims()
	}
	if x.Dims() != 2 || axis != 1 {
		return unsupported("only Softmax over axis 1 of a 2-D tensor is supported")
	}
	y, err := Softmax(x)
	if err != nil {
		return err
	}
	b.set(node, y)
	return nil
}

// probeClasses builds the network once at batch size 1 to validate every node's
// shapes and read the number of classes.
func (n *Network) probeClasses() (int, error) {
	g := G.NewGraph()
	x := n.NewInput(g, tensor.Float32, 1)
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
