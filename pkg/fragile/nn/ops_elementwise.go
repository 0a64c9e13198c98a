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

// buildPow raises x to a constant scalar exponent (the form normalisation layers
// export: x^2, x^0.5); an exponent computed from the input is refused.
func buildPow(b *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	p, ok, err := b.optionalScalar(node, 1)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("missing input 1")
	}
	return applyKernel(powKernel(p), in[0])
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
