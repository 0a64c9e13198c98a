package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// buildElementwise applies Add, Sub, Mul or Div with ONNX (numpy) broadcasting.
func buildElementwise(_ *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	return broadcastBinary(node.OpType, in[0], in[1])
}

// buildPow raises x to the power y. A constant scalar exponent (the form
// normalisation layers export: x^2, x^0.5) runs on powKernel; any other exponent,
// a constant tensor (FLOAT or integer), a weight or a value computed from the
// input, is broadcast against x on powBroadcastKernel, with gradients for both.
func buildPow(b *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	x := in[0]
	if p, ok := b.scalarExponent(node, x.Dims()); ok {
		return applyKernel(powKernel(p), x)
	}
	var y *G.Node
	var err error
	if t, isInt := b.known[node.Inputs[1]]; isInt {
		// An integer exponent (opset 12 allows them) is a FLOAT constant to the graph.
		values := make([]float64, len(t.data))
		for i, v := range t.data {
			values[i] = float64(v)
		}
		y = b.constantNode(node.Inputs[1], t.shape, values)
	} else if y, err = b.input(node, 1); err != nil {
		return nil, err
	}
	if x, y, err = alignRanks(x, y); err != nil {
		return nil, err
	}
	return applyKernel(powBroadcastKernel(), x, y)
}

// scalarExponent returns Pow's exponent when it is a constant (FLOAT or integer)
// holding one value, of rank at most x's: then it neither varies nor broadcasts x.
func (b *builder) scalarExponent(node *onnx.Node, rank int) (float64, bool) {
	if len(node.Inputs) < 2 || node.Inputs[1] == "" {
		return 0, false
	}
	name := node.Inputs[1]
	if t, ok := b.known[name]; ok {
		return float64(t.data[0]), len(t.data) == 1 && len(t.shape) <= rank
	}
	p, ok, err := b.optionalScalar(node, 1)
	if err != nil || !ok {
		return 0, false
	}
	dims := 0
	if t, isParam := b.net.params[name]; isParam {
		dims = len(t.Dims)
	} else if v, isNode := b.values[name]; isNode {
		dims = v.Dims()
	}
	return p, dims <= rank
}

// alignRanks prepends ones to the shape of the lower-rank input, as numpy
// broadcasting does.
func alignRanks(x, y *G.Node) (*G.Node, *G.Node, error) {
	var err error
	if xs, ys := x.Shape(), y.Shape(); len(xs) < len(ys) {
		x, err = G.Reshape(x, append(ones(len(ys)-len(xs)), xs...))
	} else if len(ys) < len(xs) {
		y, err = G.Reshape(y, append(ones(len(xs)-len(ys)), ys...))
	}
	return x, y, err
}

func broadcastBinary(op string, x, y *G.Node) (*G.Node, error) {
	x, y, err := alignRanks(x, y)
	if err != nil {
		return nil, err
	}
	xs, ys := x.Shape(), y.Shape()
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
