package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// Layout ops on FLOAT data. The same ops on constant integers (shape arithmetic)
// are folded by fold.go instead.

func buildIdentity(_ *builder, _ *onnx.Node, in []*G.Node) (*G.Node, error) { return in[0], nil }

// buildConstant adds a FLOAT Constant (integer ones are folded) and records its
// values for ops that read them as parameters.
func buildConstant(b *builder, node *onnx.Node, _ []*G.Node) (*G.Node, error) {
	a := node.Attr("value")
	if a == nil || a.T == nil {
		return nil, unsupported("only the tensor form of Constant is supported")
	}
	if a.T.DataType != onnx.DataTypeFloat {
		return nil, unsupported("constant of type %s is not supported", a.T.DataType)
	}
	values := float64s(a.T.Float)
	b.floats[node.Outputs[0]] = values
	return b.constantNode(node.Outputs[0], intDims(a.T.Dims), values), nil
}

// buildCast passes FLOAT data through a Cast to FLOAT (integer casts are folded).
func buildCast(_ *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	if to := onnx.DataType(attrInt(node, "to", 0)); to != onnx.DataTypeFloat && to != onnx.DataTypeDouble {
		return nil, unsupported("cast of FLOAT data to %s is not supported", to)
	}
	return in[0], nil
}

func buildFlatten(_ *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	shape, err := flattenShape(in[0].Shape(), int(attrInt(node, "axis", 1)))
	if err != nil {
		return nil, err
	}
	return G.Reshape(in[0], tensor.Shape(shape))
}

// buildReshape reshapes to the constant target shape: input 1, or the shape
// attribute before opset 5.
func buildReshape(b *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	var target []int64
	var err error
	if a := node.Attr("shape"); a != nil && b.net.opset < 5 {
		target = a.Ints
	} else if target, err = b.ints(node, 1); err != nil {
		return nil, err
	}
	batchDim := len(target) > 0 && b.dynamic[node.Inputs[0]] && b.net.fixedBatch > 0 && int(target[0]) == b.net.fixedBatch
	shape, err := reshapeTarget(in[0].Shape(), target, batchDim, b.batch, attrInt(node, "allowzero", 0) != 0)
	if err != nil {
		return nil, err
	}
	return G.Reshape(in[0], tensor.Shape(shape))
}

func buildSqueeze(b *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	axes, ok, err := squeezeAxes(b, node)
	if err != nil {
		return nil, err
	}
	var shape []int
	if node.OpType == "Squeeze" {
		shape, err = squeezeShape(in[0].Shape(), axes, !ok)
	} else if !ok {
		return nil, fmt.Errorf("Unsqueeze needs axes")
	} else {
		shape, err = unsqueezeShape(in[0].Shape(), axes)
	}
	if err != nil {
		return nil, err
	}
	if len(shape) == 0 {
		return nil, unsupported("squeezing %v to a scalar is not supported", in[0].Shape())
	}
	return G.Reshape(in[0], tensor.Shape(shape))
}

func buildTranspose(_ *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	perm, err := transposePerm(node, in[0].Dims())
	if err != nil {
		return nil, err
	}
	identity := true
	for i, p := range perm {
		identity = identity && i == p
	}
	if identity {
		return in[0], nil
	}
	return G.Transpose(in[0], perm...)
}

// buildConcat joins its FLOAT inputs (any number) along axis, on concatKernel:
// gorgonia's own Concat has a wrong gradient past channel 255 (see concatKernel).
func buildConcat(_ *builder, node *onnx.Node, parts []*G.Node) (*G.Node, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("no inputs")
	}
	a, err := axis(int(attrInt(node, "axis", 0)), parts[0].Dims())
	if err != nil {
		return nil, err
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	return applyKernel(&concatKernel{axis: a, parts: len(parts)}, parts...)
}

func buildSlice(b *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	index, err := sliceIndex(b, node, in[0].Shape())
	if err != nil {
		return nil, err
	}
	return applyKernel(&selectKernel{index: index, what: "Slice"}, in[0])
}

func buildGather(b *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	indices, ok := b.known[node.Inputs[1]]
	if !ok {
		return nil, unsupported("indices %q must be a constant integer tensor", node.Inputs[1])
	}
	index, shape, err := gatherIndex(in[0].Shape(), int(attrInt(node, "axis", 0)), indices)
	if err != nil {
		return nil, err
	}
	if len(shape) == 0 {
		return nil, unsupported("gathering a scalar from %v is not supported", in[0].Shape())
	}
	y, err := applyKernel(&selectKernel{index: index, what: "Gather"}, in[0])
	if err != nil {
		return nil, err
	}
	return G.Reshape(y, tensor.Shape(shape))
}

func buildSplit(b *builder, node *onnx.Node, in []*G.Node) ([]*G.Node, error) {
	parts, err := splitIndex(b, node, in[0].Shape())
	if err != nil {
		return nil, err
	}
	outs := make([]*G.Node, len(parts))
	for i, index := range parts {
		if outs[i], err = applyKernel(&selectKernel{index: index, what: "Split"}, in[0]); err != nil {
			return nil, err
		}
	}
	return outs, nil
}

// padModes map a position j outside an axis of size n to the position Pad's mode
// repeats there: none (-1, the fill value) for constant, the nearest end for edge,
// the mirror image without repeating the end for reflect (numpy's "reflect"), and
// the position one period away for wrap (opset 19).
var padModes = map[string]func(j, n int) int{
	"constant": func(int, int) int { return -1 },
	"edge":     func(j, n int) int { return min(max(j, 0), n-1) },
	"reflect": func(j, n int) int {
		if n == 1 {
			return 0
		}
		period := 2 * (n - 1)
		if j = ((j % period) + period) % period; j >= n {
			j = period - j
		}
		return j
	},
	"wrap": func(j, n int) int { return ((j % n) + n) % n },
}

// buildPad is Pad in every mode of padModes (negative pads crop); the constant
// mode's value is the attribute before opset 11 and the optional constant input 2
// from 11 on.
func buildPad(b *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	outside, ok := padModes[attrString(node, "mode", "constant")]
	if !ok {
		return nil, unsupported("mode %q is not supported (constant, edge, reflect and wrap are)", attrString(node, "mode", ""))
	}
	value := float64(attrFloat(node, "value", 0))
	if v, ok, err := b.optionalScalar(node, 2); err != nil {
		return nil, err
	} else if ok {
		value = v
	}
	index, err := padIndex(b, node, in[0].Shape(), outside)
	if err != nil {
		return nil, err
	}
	return applyKernel(&selectKernel{index: index, fill: value, what: "Pad"}, in[0])
}
