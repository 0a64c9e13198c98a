package onnxtest

import (
	"math/rand/v2"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// Builder is onnx.Builder: tests assemble their models with the same code the
// project's own architectures use.
type Builder = onnx.Builder

// NewBuilder starts a test model whose one input is called input, of FLOAT elements
// with the given dims; a dim of -1 is symbolic ("N", the batch).
func NewBuilder(r *rand.Rand, input string, dims ...int64) *Builder {
	return onnx.NewBuilder(r, "onnxtest", input, dims...)
}

// Attribute constructors, re-exported so test tables read as before.
var (
	AttrInt    = onnx.AttrInt
	AttrInts   = onnx.AttrInts
	AttrFloat  = onnx.AttrFloat
	AttrString = onnx.AttrString
)

// MLP is a classifier on 1x4x4 inputs with a symbolic batch, in the layout PyTorch
// exports an MLP with BatchNorm1d: Flatten, Gemm (transB, with bias),
// BatchNormalization on the 2-D Gemm output, Relu, Gemm with alpha and beta, and a
// final Softmax over 5 classes. Its hidden pre-activations are well away from zero
// for inputs in [0, 1) (BatchNormalization's shift moves them), so finite
// differences rarely straddle a Relu kink.
func MLP(r *rand.Rand) *onnx.Model {
	const hidden, classes = 12, 5
	b := NewBuilder(r, "image", -1, 1, 4, 4)
	x := b.Node("Flatten", []string{b.Last()}, AttrInt("axis", 1))
	w1 := b.Weight("fc1.weight", 0, 0.5, hidden, 16)
	b1 := b.Weight("fc1.bias", 0, 0.1, hidden)
	h := b.Node("Gemm", []string{x, w1, b1}, AttrInt("transB", 1))
	scale := b.Uniform("bn.weight", 0.5, 1.5, hidden)
	shift := b.Weight("bn.bias", 0, 0.5, hidden)
	mean := b.Weight("bn.running_mean", 0, 0.5, hidden)
	variance := b.Uniform("bn.running_var", 0.5, 2, hidden)
	h = b.Node("BatchNormalization", []string{h, scale, shift, mean, variance}, AttrFloat("epsilon", 1e-3))
	h = b.Node("Relu", []string{h})
	w2 := b.Weight("fc2.weight", 0, 0.5, hidden, classes)
	b2 := b.Weight("fc2.bias", 0, 0.1, 1, classes)
	logits := b.Node("Gemm", []string{h, w2, b2}, AttrFloat("alpha", 1.5), AttrFloat("beta", 0.5))
	b.Node("Softmax", []string{logits}, AttrInt("axis", 1))
	return b.Model(-1, classes)
}

// MLPLogits is the name of the MLP's pre-softmax logits.
const MLPLogits = "Gemm_1_out"

// ConvNet is a small LeNet-style classifier on 1x10x10 inputs with a symbolic batch:
// Conv 3x3 (pads 1, with bias), Relu, MaxPool 2x2 stride 2, Conv 3x3 stride 2 pads
// 1 with dilation-free explicit pads, Relu, Flatten, Gemm to 4 classes.
func ConvNet(r *rand.Rand) *onnx.Model {
	b := NewBuilder(r, "pixels", -1, 1, 10, 10)
	w1 := b.Weight("conv1.weight", 0, 0.4, 3, 1, 3, 3)
	c1 := b.Weight("conv1.bias", 0.05, 0.1, 3)
	h := b.Node("Conv", []string{b.Last(), w1, c1}, AttrInts("kernel_shape", 3, 3), AttrInts("pads", 1, 1, 1, 1))
	h = b.Node("Relu", []string{h})
	h = b.Node("MaxPool", []string{h}, AttrInts("kernel_shape", 2, 2), AttrInts("strides", 2, 2))
	w2 := b.Weight("conv2.weight", 0, 0.4, 4, 3, 3, 3)
	h = b.Node("Conv", []string{h, w2}, AttrInts("kernel_shape", 3, 3), AttrInts("strides", 2, 2), AttrInts("pads", 1, 1, 1, 1))
	h = b.Node("Relu", []string{h})
	h = b.Node("Flatten", []string{h})
	w3 := b.Weight("fc.weight", 0, 0.4, 4*3*3, 4)
	b3 := b.Weight("fc.bias", 0, 0.1, 4)
	b.Node("Gemm", []string{h, w3, b3})
	return b.Model(-1, 4)
}
