package nn

import (
	"slices"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// buildReduce is ReduceMean and ReduceSum over the axes given as an attribute
// (ReduceMean to opset 17, ReduceSum to 12) or a constant input (ReduceSum from
// 13), all axes when none are given, keeping the reduced axes as ones unless
// keepdims is 0. gorgonia's Sum over several axes at once is wrong beyond the
// first channel, so the axes are summed one at a time, the last first.
func buildReduce(b *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	x := in[0]
	shape := x.Shape().Clone()
	axes := attrInts(node, "axes", nil)
	if list, ok, err := b.optionalInts(node, 1); err != nil {
		return nil, err
	} else if ok {
		axes = intDims(list)
	}
	if len(axes) == 0 {
		if attrInt(node, "noop_with_empty_axes", 0) != 0 {
			return x, nil
		}
		for i := range shape {
			axes = append(axes, i)
		}
	}
	resolved := make([]int, len(axes))
	for i, a := range axes {
		var err error
		if resolved[i], err = axis(a, len(shape)); err != nil {
			return nil, err
		}
	}
	slices.Sort(resolved)
	resolved = slices.Compact(resolved)
	y, count := x, 1
	for i := len(resolved) - 1; i >= 0; i-- {
		a := resolved[i]
		count *= shape[a]
		var err error
		if y.Dims() == 1 {
			y, err = G.Sum(y)
		} else {
			y, err = G.Sum(y, a)
		}
		if err != nil {
			return nil, err
		}
	}
	var err error
	if node.OpType == "ReduceMean" && count != 1 {
		if y, err = G.Mul(y, b.constant(1/float64(count))); err != nil {
			return nil, err
		}
	}
	out := make([]int, 0, len(shape))
	for i, d := range shape {
		switch {
		case !slices.Contains(resolved, i):
			out = append(out, d)
		case attrInt(node, "keepdims", 1) != 0:
			out = append(out, 1)
		}
	}
	if len(out) == 0 {
		return y, nil
	}
	return G.Reshape(y, tensor.Shape(out))
}
