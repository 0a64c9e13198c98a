package nn

import (
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

func buildRelu(_ *builder, _ *onnx.Node, in []*G.Node) (*G.Node, error)    { return G.Rectify(in[0]) }
func buildSigmoid(_ *builder, _ *onnx.Node, in []*G.Node) (*G.Node, error) { return G.Sigmoid(in[0]) }
func buildTanh(_ *builder, _ *onnx.Node, in []*G.Node) (*G.Node, error)    { return G.Tanh(in[0]) }
func buildErf(_ *builder, _ *onnx.Node, in []*G.Node) (*G.Node, error) {
	return applyKernel(erfKernel(), in[0])
}

// buildLeakyRelu computes max(x, 0) + alpha*min(x, 0) = relu(x) - alpha*relu(-x),
// which has a gradient, unlike gorgonnx's LeakyRelu.
func buildLeakyRelu(b *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	alpha := float64(attrFloat(node, "alpha", 0.01))
	pos, err := G.Rectify(in[0])
	if err != nil {
		return nil, err
	}
	negX, err := G.Neg(in[0])
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
}

// buildClip bounds x by min and max: attributes before opset 11, optional
// constant inputs from opset 11 on; an absent bound is no bound.
func buildClip(b *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	lo, hi := math.Inf(-1), math.Inf(1)
	if a := node.Attr("min"); a != nil {
		lo = float64(a.F)
	}
	if a := node.Attr("max"); a != nil {
		hi = float64(a.F)
	}
	for i, bound := range []*float64{&lo, &hi} {
		v, ok, err := b.optionalScalar(node, i+1)
		if err != nil {
			return nil, err
		}
		if ok {
			*bound = v
		}
	}
	return applyKernel(clipKernel(lo, hi), in[0])
}

func buildHardSigmoid(_ *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	alpha, beta := attrFloat(node, "alpha", 0.2), attrFloat(node, "beta", 0.5)
	return applyKernel(hardSigmoidKernel(float64(alpha), float64(beta)), in[0])
}

func buildHardSwish(_ *builder, _ *onnx.Node, in []*G.Node) (*G.Node, error) {
	return applyKernel(hardSwishKernel(), in[0])
}

// buildSoftmax handles Softmax and LogSoftmax inside the graph (a final Softmax is
// skipped by Build). Before opset 13 the input is coerced to 2-D at axis (default
// 1) and normalised over everything from axis on; from 13 on it is normalised over
// the one axis (default -1).
func buildSoftmax(b *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	x := in[0]
	shape := x.Shape().Clone()
	norm := Softmax
	if node.OpType == "LogSoftmax" {
		norm = LogSoftmax
	}
	if b.net.opset < 13 {
		a, err := axis(int(attrInt(node, "axis", 1)), len(shape))
		if err != nil {
			return nil, err
		}
		inner := 1
		for _, d := range shape[a:] {
			inner *= d
		}
		flat, err := G.Reshape(x, tensor.Shape{shape.TotalSize() / inner, inner})
		if err != nil {
			return nil, err
		}
		y, err := norm(flat)
		if err != nil {
			return nil, err
		}
		return G.Reshape(y, shape)
	}
	a, err := axis(int(attrInt(node, "axis", -1)), len(shape))
	if err != nil {
		return nil, err
	}
	// Move the axis last, normalise the rows of the 2-D view, and move it back.
	perm := make([]int, 0, len(shape))
	for i := range shape {
		if i != a {
			perm = append(perm, i)
		}
	}
	perm = append(perm, a)
	moved := x
	if a != len(shape)-1 {
		if moved, err = G.Transpose(x, perm...); err != nil {
			return nil, err
		}
	}
	movedShape := moved.Shape().Clone()
	flat, err := G.Reshape(moved, tensor.Shape{shape.TotalSize() / shape[a], shape[a]})
	if err != nil {
		return nil, err
	}
	y, err := norm(flat)
	if err != nil {
		return nil, err
	}
	if y, err = G.Reshape(y, movedShape); err != nil {
		return nil, err
	}
	if a == len(shape)-1 {
		return y, nil
	}
	back := make([]int, len(perm))
	for i, p := range perm {
		back[p] = i
	}
	return G.Transpose(y, back...)
}
