package nn

import (
	"fmt"
	"slices"

	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// Shape arithmetic folded while building. PyTorch exports reshapes whose target is
// computed (Shape -> Gather -> Unsqueeze -> Concat -> Reshape, with integer Add,
// Div and Mul for shufflenet's channel split); every such value is known once the
// batch size is, so it is evaluated here in Go and never becomes a graph node.

// intTensor is a constant integer tensor.
type intTensor struct {
	shape []int
	data  []int64
}

// folders evaluate an op whose inputs are all constant integers. Shape is folded
// whatever its input, since only the input's shape is read.
var folders = map[string]func(b *builder, node *onnx.Node, in []*intTensor) ([]*intTensor, error){
	"Constant":  foldConstant,
	"Shape":     nil, // fold calls foldShape: its input need not be constant
	"Identity":  func(_ *builder, _ *onnx.Node, in []*intTensor) ([]*intTensor, error) { return in[:1], nil },
	"Cast":      foldCast,
	"Add":       foldArithmetic,
	"Sub":       foldArithmetic,
	"Mul":       foldArithmetic,
	"Div":       foldArithmetic,
	"Gather":    foldGather,
	"Slice":     foldSelect,
	"Concat":    foldConcat,
	"Unsqueeze": foldReshape,
	"Squeeze":   foldReshape,
	"Reshape":   foldReshape,
	"Flatten":   foldReshape,
}

// fold evaluates node when it is shape arithmetic on constants and records its
// outputs; folded is false when the node is left to the graph builders.
func (b *builder) fold(node *onnx.Node) (folded bool, err error) {
	if node.OpType == "Shape" {
		return true, b.foldShape(node)
	}
	fn, ok := folders[node.OpType]
	if !ok {
		return false, nil
	}
	if node.OpType == "Constant" {
		a := node.Attr("value")
		if a == nil || a.T == nil || (a.T.DataType != onnx.DataTypeInt64 && a.T.DataType != onnx.DataTypeInt32) {
			return false, nil
		}
	}
	var in []*intTensor
	for _, name := range node.Inputs {
		if name == "" {
			in = append(in, nil)
			continue
		}
		t, ok := b.known[name]
		if !ok {
			// FLOAT data: the graph builders take the node.
			return false, nil
		}
		in = append(in, t)
	}
	if node.OpType == "Cast" && !isIntType(onnx.DataType(attrInt(node, "to", 0))) {
		// Integers cast to FLOAT become a graph constant.
		t := in[0]
		values := make([]float64, len(t.data))
		for i, v := range t.data {
			values[i] = float64(v)
		}
		b.floats[node.Outputs[0]] = values
		b.values[node.Outputs[0]] = b.constantNode(node.Outputs[0], t.shape, values)
		return true, nil
	}
	outs, err := fn(b, node, in)
	if err != nil {
		return true, err
	}
	for i, o := range outs {
		b.known[node.Outputs[i]] = o
	}
	return true, nil
}

func isIntType(t onnx.DataType) bool {
	switch t {
	case onnx.DataTypeInt64, onnx.DataTypeInt32, onnx.DataTypeInt8, onnx.DataTypeUint8:
		return true
	}
	return false
}

// foldShape is Shape, with the start and end attributes of opset 15.
func (b *builder) foldShape(node *onnx.Node) error {
	var shape []int
	name := node.Inputs[0]
	if v, ok := b.values[name]; ok {
		shape = v.Shape()
	} else if t, ok := b.known[name]; ok {
		shape = t.shape
	} else if t, ok := b.net.params[name]; ok {
		shape = intDims(t.Dims)
	} else {
		return fmt.Errorf("input %q is not computed before this node", name)
	}
	rank := int64(len(shape))
	clamp := func(v int64) int64 {
		if v < 0 {
			v += rank
		}
		return min(max(v, 0), rank)
	}
	start, end := clamp(attrInt(node, "start", 0)), clamp(attrInt(node, "end", rank))
	out := &intTensor{shape: []int{0}}
	for _, d := range shape[start:max(start, end)] {
		out.data = append(out.data, int64(d))
	}
	out.shape[0] = len(out.data)
	b.known[node.Outputs[0]] = out
	return nil
}

func foldConstant(_ *builder, node *onnx.Node, _ []*intTensor) ([]*intTensor, error) {
	t := node.Attr("value").T
	return []*intTensor{{shape: intDims(t.Dims), data: t.Int64}}, nil
}

func foldCast(_ *builder, _ *onnx.Node, in []*intTensor) ([]*intTensor, error) {
	return in[:1], nil
}

// foldArithmetic is integer Add, Sub, Mul and Div (truncating, as ONNX's integer
// Div does) with numpy broadcasting.
func foldArithmetic(_ *builder, node *onnx.Node, in []*intTensor) ([]*intTensor, error) {
	if len(in) != 2 {
		return nil, fmt.Errorf("want 2 inputs, got %d", len(in))
	}
	x, y := in[0], in[1]
	rank := max(len(x.shape), len(y.shape))
	pad := func(s []int) []int { return append(ones(rank-len(s)), s...) }
	xs, ys := pad(x.shape), pad(y.shape)
	shape, err := broadcastShapes(xs, ys)
	if err != nil {
		return nil, fmt.Errorf("shapes %v and %v do not broadcast", x.shape, y.shape)
	}
	out := &intTensor{shape: shape, data: make([]int64, tensor.Shape(shape).TotalSize())}
	xi, yi := broadcastSources(shape, xs), broadcastSources(shape, ys)
	for o := range out.data {
		a, c := x.data[xi[o]], y.data[yi[o]]
		switch node.OpType {
		case "Add":
			out.data[o] = a + c
		case "Sub":
			out.data[o] = a - c
		case "Mul":
			out.data[o] = a * c
		default:
			if c == 0 {
				return nil, fmt.Errorf("integer division by zero")
			}
			out.data[o] = a / c
		}
	}
	return []*intTensor{out}, nil
}

// selectInts applies a selection (see selectKernel) to an integer tensor.
func selectInts(t *intTensor, index [][]int) (*intTensor, error) {
	k := &selectKernel{index: index, what: "fold"}
	shape, err := k.outShape([]tensor.Shape{t.shape})
	if err != nil {
		return nil, err
	}
	out := &intTensor{shape: shape}
	for _, s := range k.sources(t.shape) {
		out.data = append(out.data, t.data[s])
	}
	return out, nil
}

func foldGather(_ *builder, node *onnx.Node, in []*intTensor) ([]*intTensor, error) {
	if len(in) < 2 || in[1] == nil {
		return nil, fmt.Errorf("missing indices")
	}
	index, shape, err := gatherIndex(in[0].shape, int(attrInt(node, "axis", 0)), in[1])
	if err != nil {
		return nil, err
	}
	t, err := selectInts(in[0], index)
	if err != nil {
		return nil, err
	}
	t.shape = shape
	return []*intTensor{t}, nil
}

func foldSelect(b *builder, node *onnx.Node, in []*intTensor) ([]*intTensor, error) {
	index, err := sliceIndex(b, node, in[0].shape)
	if err != nil {
		return nil, err
	}
	t, err := selectInts(in[0], index)
	return []*intTensor{t}, err
}

func foldConcat(_ *builder, node *onnx.Node, in []*intTensor) ([]*intTensor, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("no inputs")
	}
	a, err := axis(int(attrInt(node, "axis", 0)), len(in[0].shape))
	if err != nil {
		return nil, err
	}
	outer := tensor.Shape(in[0].shape[:a]).TotalSize()
	shape := slices.Clone(in[0].shape)
	shape[a] = 0
	for _, t := range in {
		if len(t.shape) != len(shape) {
			return nil, fmt.Errorf("ranks %v and %v differ", in[0].shape, t.shape)
		}
		shape[a] += t.shape[a]
	}
	out := &intTensor{shape: shape}
	for o := range outer {
		for _, t := range in {
			inner := len(t.data) / outer
			out.data = append(out.data, t.data[o*inner:(o+1)*inner]...)
		}
	}
	return []*intTensor{out}, nil
}

// foldReshape is Reshape, Flatten, Squeeze and Unsqueeze of an integer tensor:
// the values stay, the shape changes.
func foldReshape(b *builder, node *onnx.Node, in []*intTensor) ([]*intTensor, error) {
	t := in[0]
	var shape []int
	var err error
	switch node.OpType {
	case "Reshape":
		if len(in) < 2 || in[1] == nil {
			return nil, fmt.Errorf("missing shape")
		}
		shape, err = reshapeTarget(t.shape, in[1].data, false, 0, attrInt(node, "allowzero", 0) != 0)
	case "Flatten":
		shape, err = flattenShape(t.shape, int(attrInt(node, "axis", 1)))
	default:
		axes, ok, axesErr := squeezeAxes(b, node)
		switch {
		case axesErr != nil:
			err = axesErr
		case node.OpType == "Squeeze":
			shape, err = squeezeShape(t.shape, axes, !ok)
		case !ok:
			err = fmt.Errorf("Unsqueeze needs axes")
		default:
			shape, err = unsqueezeShape(t.shape, axes)
		}
	}
	if err != nil {
		return nil, err
	}
	return []*intTensor{{shape: shape, data: t.data}}, nil
}
