package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// buildMatMul is numpy's matmul. Two matrices multiply on gorgonia's Mul (BLAS);
// every other form, batched with the leading axes broadcast, or with a 1-D
// operand, runs on matMulKernel. A 1-D first operand is a row (1, k), a 1-D second
// one a column (k, 1), and the axis they add is dropped from the result.
func buildMatMul(_ *builder, _ *onnx.Node, in []*G.Node) (*G.Node, error) {
	x, w := in[0], in[1]
	if x.Dims() == 2 && w.Dims() == 2 {
		return G.Mul(x, w)
	}
	if x.Dims() == 0 || w.Dims() == 0 {
		return nil, fmt.Errorf("MatMul of a scalar: shapes %v and %v", x.Shape(), w.Shape())
	}
	xs, ws := x.Shape(), w.Shape()
	if len(xs) == 1 && len(ws) == 1 {
		return nil, unsupported("MatMul of two vectors %v and %v gives a scalar, which is not supported", xs, ws)
	}
	var err error
	if x.Dims() == 1 {
		if x, err = G.Reshape(x, tensor.Shape{1, xs[0]}); err != nil {
			return nil, err
		}
	}
	if w.Dims() == 1 {
		if w, err = G.Reshape(w, tensor.Shape{ws[0], 1}); err != nil {
			return nil, err
		}
	}
	if x, w, err = alignRanks(x, w); err != nil {
		return nil, err
	}
	y, err := applyKernel(matMulKernel{}, x, w)
	if err != nil {
		return nil, err
	}
	shape := y.Shape().Clone()
	switch {
	case len(xs) == 1:
		shape = append(shape[:len(shape)-2], shape[len(shape)-1])
	case len(ws) == 1:
		shape = shape[:len(shape)-1]
	default:
		return y, nil
	}
	return G.Reshape(y, shape)
}

// buildGemm computes alpha*A'*B' + beta*C from MatMul, Transpose and broadcasting
// Add, all of which have gradients.
func buildGemm(b *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	a, w, c := in[0], in[1], in[2]
	if a.Dims() != 2 || w.Dims() != 2 {
		return nil, fmt.Errorf("Gemm needs 2-D inputs, got %v and %v", a.Shape(), w.Shape())
	}
	var err error
	if attrInt(node, "transA", 0) != 0 {
		if a, err = G.Transpose(a, 1, 0); err != nil {
			return nil, err
		}
	}
	if attrInt(node, "transB", 0) != 0 {
		if w, err = G.Transpose(w, 1, 0); err != nil {
			return nil, err
		}
	}
	y, err := G.Mul(a, w)
	if err != nil {
		return nil, err
	}
	if alpha := attrFloat(node, "alpha", 1); alpha != 1 {
		if y, err = G.Mul(y, b.constant(float64(alpha))); err != nil {
			return nil, err
		}
	}
	if c == nil {
		return y, nil
	}
	if beta := attrFloat(node, "beta", 1); beta != 1 {
		if c, err = G.Mul(c, b.constant(float64(beta))); err != nil {
			return nil, err
		}
	}
	return broadcastBinary("Add", y, c)
}
