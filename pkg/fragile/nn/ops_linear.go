package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

func buildMatMul(_ *builder, _ *onnx.Node, in []*G.Node) (*G.Node, error) {
	x, w := in[0], in[1]
	if x.Dims() != 2 || w.Dims() != 2 {
		return nil, unsupported("only 2-D MatMul is supported, got %v and %v", x.Shape(), w.Shape())
	}
	return G.Mul(x, w)
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
