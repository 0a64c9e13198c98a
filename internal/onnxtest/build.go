package onnxtest

import (
	"fmt"
	"math/rand/v2"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// Builder assembles an ONNX model node by node. Weights come from the explicit
// source given to NewBuilder, so a test's models are reproducible.
type Builder struct {
	m     onnx.Model
	r     *rand.Rand
	count map[string]int
	// last is the output of the most recent node.
	last string
}

// NewBuilder starts a model whose one input is called input, of FLOAT elements with
// the given dims; a dim of -1 is symbolic ("N", the batch).
func NewBuilder(r *rand.Rand, input string, dims ...int64) *Builder {
	b := &Builder{
		m: onnx.Model{
			IRVersion:    7,
			ProducerName: "onnxtest",
			Opsets:       map[string]int64{"": 13},
			Graph:        onnx.Graph{Name: "onnxtest"},
		},
		r:     r,
		count: map[string]int{},
		last:  input,
	}
	b.m.Graph.Inputs = append(b.m.Graph.Inputs, valueInfo(input, dims))
	return b
}

func valueInfo(name string, dims []int64) onnx.ValueInfo {
	vi := onnx.ValueInfo{Name: name, ElemType: onnx.DataTypeFloat}
	for _, d := range dims {
		if d < 0 {
			vi.Dims = append(vi.Dims, onnx.Dim{Value: -1, Param: "N"})
		} else {
			vi.Dims = append(vi.Dims, onnx.Dim{Value: d})
		}
	}
	return vi
}

// Last is the output name of the most recent node (the input before any node).
func (b *Builder) Last() string { return b.last }

// Weight adds a FLOAT initializer of normal values with the given mean and
// standard deviation, and returns its name.
func (b *Builder) Weight(name string, mean, std float64, dims ...int64) string {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(mean + std*b.r.NormFloat64())
	}
	return b.Const(name, v, dims...)
}

// Uniform adds a FLOAT initializer of values uniform in [lo, hi), and returns its name.
func (b *Builder) Uniform(name string, lo, hi float64, dims ...int64) string {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(lo + (hi-lo)*b.r.Float64())
	}
	return b.Const(name, v, dims...)
}

// Const adds a FLOAT initializer with the given values, and returns its name.
func (b *Builder) Const(name string, values []float32, dims ...int64) string {
	b.m.Graph.Initializers = append(b.m.Graph.Initializers, onnx.Tensor{
		Name: name, Dims: append([]int64(nil), dims...), DataType: onnx.DataTypeFloat, Float: values,
	})
	return name
}

// Ints adds an INT64 initializer (a Reshape target), and returns its name.
func (b *Builder) Ints(name string, values ...int64) string {
	b.m.Graph.Initializers = append(b.m.Graph.Initializers, onnx.Tensor{
		Name: name, Dims: []int64{int64(len(values))}, DataType: onnx.DataTypeInt64, Int64: values,
	})
	return name
}

// Node appends a node of the given op reading inputs, names it <op>_<k>, and
// returns its (single) output name.
func (b *Builder) Node(op string, inputs []string, attrs ...onnx.Attribute) string {
	k := b.count[op]
	b.count[op]++
	name := fmt.Sprintf("%s_%d", op, k)
	out := name + "_out"
	b.m.Graph.Nodes = append(b.m.Graph.Nodes, onnx.Node{
		Name: name, OpType: op, Inputs: inputs, Outputs: []string{out}, Attributes: attrs,
	})
	b.last = out
	return out
}

// Model declares the output (the last node's, with the given dims) and returns the model.
func (b *Builder) Model(dims ...int64) *onnx.Model {
	m := b.m
	m.Graph.Outputs = []onnx.ValueInfo{valueInfo(b.last, dims)}
	return &m
}

// AttrInt is an INT attribute.
func AttrInt(name string, v int64) onnx.Attribute {
	return onnx.Attribute{Name: name, Type: onnx.AttributeInt, I: v}
}

// AttrInts is an INTS attribute.
func AttrInts(name string, v ...int64) onnx.Attribute {
	return onnx.Attribute{Name: name, Type: onnx.AttributeInts, Ints: v}
}

// AttrFloat is a FLOAT attribute.
func AttrFloat(name string, v float32) onnx.Attribute {
	return onnx.Attribute{Name: name, Type: onnx.AttributeFloat, F: v}
}

// AttrString is a STRING attribute.
func AttrString(name, v string) onnx.Attribute {
	return onnx.Attribute{Name: name, Type: onnx.AttributeString, S: []byte(v)}
}

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
