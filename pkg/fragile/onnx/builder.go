package onnx

import (
	"fmt"
	"math/rand/v2"
)

// Builder assembles a model node by node, for the classifiers this project trains
// and for tests. Weights come from the explicit source given to NewBuilder, so
// models are reproducible.
type Builder struct {
	m     Model
	r     *rand.Rand
	count map[string]int
	last  string
}

// NewBuilder starts a model whose one input is called input, of FLOAT elements with
// the given dims; a dim of -1 is the symbolic batch "N".
func NewBuilder(r *rand.Rand, producer, input string, dims ...int64) *Builder {
	b := &Builder{
		m: Model{
			IRVersion:    7,
			ProducerName: producer,
			Opsets:       map[string]int64{"": 13},
			Graph:        Graph{Name: producer},
		},
		r:     r,
		count: map[string]int{},
		last:  input,
	}
	b.m.Graph.Inputs = append(b.m.Graph.Inputs, floatValue(input, dims))
	return b
}

func floatValue(name string, dims []int64) ValueInfo {
	vi := ValueInfo{Name: name, ElemType: DataTypeFloat}
	for _, d := range dims {
		if d < 0 {
			vi.Dims = append(vi.Dims, Dim{Value: -1, Param: "N"})
		} else {
			vi.Dims = append(vi.Dims, Dim{Value: d})
		}
	}
	return vi
}

// Last is the output name of the most recent node (the input before any node).
func (b *Builder) Last() string { return b.last }

// Weight adds a FLOAT initializer of normal values with the given mean and standard
// deviation, and returns its name.
func (b *Builder) Weight(name string, mean, std float64, dims ...int64) string {
	v := make([]float32, product(dims))
	for i := range v {
		v[i] = float32(mean + std*b.r.NormFloat64())
	}
	return b.Const(name, v, dims...)
}

// Uniform adds a FLOAT initializer of values uniform in [lo, hi), and returns its name.
func (b *Builder) Uniform(name string, lo, hi float64, dims ...int64) string {
	v := make([]float32, product(dims))
	for i := range v {
		v[i] = float32(lo + (hi-lo)*b.r.Float64())
	}
	return b.Const(name, v, dims...)
}

// Const adds a FLOAT initializer with the given values, and returns its name.
func (b *Builder) Const(name string, values []float32, dims ...int64) string {
	b.m.Graph.Initializers = append(b.m.Graph.Initializers, Tensor{
		Name: name, Dims: append([]int64(nil), dims...), DataType: DataTypeFloat, Float: values,
	})
	return name
}

// Ints adds an INT64 initializer (a Reshape target), and returns its name.
func (b *Builder) Ints(name string, values ...int64) string {
	b.m.Graph.Initializers = append(b.m.Graph.Initializers, Tensor{
		Name: name, Dims: []int64{int64(len(values))}, DataType: DataTypeInt64, Int64: values,
	})
	return name
}

// FloatConstant appends a Constant node holding FLOAT values of the given dims (a
// scalar when dims is empty), the form torch.onnx.export gives Clip's bounds, and
// returns its output name.
func (b *Builder) FloatConstant(dims []int64, values ...float32) string {
	return b.constant(Tensor{Dims: append([]int64(nil), dims...), DataType: DataTypeFloat, Float: values})
}

// IntConstant appends a Constant node holding a 1-D INT64 tensor (shapes, axes,
// slice bounds) and returns its output name.
func (b *Builder) IntConstant(values ...int64) string {
	return b.constant(Tensor{Dims: []int64{int64(len(values))}, DataType: DataTypeInt64, Int64: values})
}

// IntScalar appends a Constant node holding one INT64 scalar (Gather's index in
// PyTorch's shape arithmetic) and returns its output name.
func (b *Builder) IntScalar(v int64) string {
	return b.constant(Tensor{DataType: DataTypeInt64, Int64: []int64{v}})
}

func (b *Builder) constant(t Tensor) string {
	return b.Node("Constant", nil, Attribute{Name: "value", Type: AttributeTensor, T: &t})
}

// Node appends a node of the given op reading inputs, names it <op>_<k>, and returns
// its (single) output name.
func (b *Builder) Node(op string, inputs []string, attrs ...Attribute) string {
	k := b.count[op]
	b.count[op]++
	name := fmt.Sprintf("%s_%d", op, k)
	out := name + "_out"
	b.m.Graph.Nodes = append(b.m.Graph.Nodes, Node{
		Name: name, OpType: op, Inputs: inputs, Outputs: []string{out}, Attributes: attrs,
	})
	b.last = out
	return out
}

// Model declares the last node's output (with the given dims) as the graph output
// and returns the model.
func (b *Builder) Model(dims ...int64) *Model {
	m := b.m
	m.Graph.Outputs = []ValueInfo{floatValue(b.last, dims)}
	return &m
}

// AttrInt is an INT attribute.
func AttrInt(name string, v int64) Attribute { return Attribute{Name: name, Type: AttributeInt, I: v} }

// AttrInts is an INTS attribute.
func AttrInts(name string, v ...int64) Attribute {
	return Attribute{Name: name, Type: AttributeInts, Ints: v}
}

// AttrFloat is a FLOAT attribute.
func AttrFloat(name string, v float32) Attribute {
	return Attribute{Name: name, Type: AttributeFloat, F: v}
}

// AttrString is a STRING attribute.
func AttrString(name, v string) Attribute {
	return Attribute{Name: name, Type: AttributeString, S: []byte(v)}
}

func product(dims []int64) int64 {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	return n
}
