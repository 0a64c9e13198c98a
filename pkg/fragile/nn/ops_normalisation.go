package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// buildBatchNorm is inference-mode batch normalisation on any rank >= 2:
// y = x*s + (bias - mean*s) with s = scale/sqrt(var+eps), per channel (axis 1).
// Scale and bias stay graph nodes so attack tools get their gradients.
func buildBatchNorm(b *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	if len(node.Outputs) > 1 {
		for _, o := range node.Outputs[1:] {
			if o != "" {
				return nil, unsupported("training-mode outputs (running mean/var) are not supported")
			}
		}
	}
	x, scale, bias, mean, variance := in[0], in[1], in[2], in[3], in[4]
	eps := float64(attrFloat(node, "epsilon", 1e-5))
	if x.Dims() < 2 {
		return nil, fmt.Errorf("input %v has no channel axis", x.Shape())
	}
	// gorgonia broadcasts over at most 4 axes: a 5-D or larger input (BatchNorm3d)
	// is normalised as (N, C, rest) and given its shape back.
	if x.Dims() > 4 {
		full := x.Shape().Clone()
		flat, err := G.Reshape(x, tensor.Shape{full[0], full[1], full.TotalSize() / (full[0] * full[1])})
		if err != nil {
			return nil, err
		}
		y, err := batchNorm(b, flat, scale, bias, mean, variance, eps)
		if err != nil {
			return nil, err
		}
		return G.Reshape(y, full)
	}
	return batchNorm(b, x, scale, bias, mean, variance, eps)
}

// batchNorm normalises x along axis 1. The per-channel scale and shift are
// computed from the weights by gorgonia ops and applied by channelAffineKernel
// (see there why not by broadcasting ops).
func batchNorm(b *builder, x, scale, bias, mean, variance *G.Node, eps float64) (*G.Node, error) {
	std, err := G.Add(variance, b.constant(eps))
	if err != nil {
		return nil, err
	}
	if std, err = G.Sqrt(std); err != nil {
		return nil, err
	}
	s, err := G.HadamardDiv(scale, std)
	if err != nil {
		return nil, err
	}
	meanS, err := G.HadamardProd(mean, s)
	if err != nil {
		return nil, err
	}
	shift, err := G.Sub(bias, meanS)
	if err != nil {
		return nil, err
	}
	// Kernel inputs share one rank: the parameters as (1, C, 1, ...).
	shape := ones(x.Dims())
	shape[1] = x.Shape()[1]
	if s, err = G.Reshape(s, tensor.Shape(shape)); err != nil {
		return nil, err
	}
	if shift, err = G.Reshape(shift, tensor.Shape(shape)); err != nil {
		return nil, err
	}
	return applyKernel(channelAffineKernel{}, x, s, shift)
}
