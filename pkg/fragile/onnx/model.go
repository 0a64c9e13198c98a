package onnx

import (
	"fmt"
	"strings"
)

// DataType is ONNX's TensorProto.DataType.
type DataType int32

// The element types this package converts; others are kept as raw bytes and
// rejected by whoever needs their values.
const (
	DataTypeUndefined DataType = 0
	DataTypeFloat     DataType = 1
	DataTypeUint8     DataType = 2
	DataTypeInt8      DataType = 3
	DataTypeInt32     DataType = 6
	DataTypeInt64     DataType = 7
	DataTypeFloat16   DataType = 10
	DataTypeDouble    DataType = 11
)

var dataTypeNames = map[DataType]string{
	0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
	8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64",
	15: "COMPLEX128", 16: "BFLOAT16",
}

func (d DataType) String() string {
	if s, ok := dataTypeNames[d]; ok {
		return s
	}
	return fmt.Sprintf("DataType(%d)", int32(d))
}

// Model is a decoded ONNX ModelProto, reduced to what inference needs.
type Model struct {
	IRVersion       int64
	ProducerName    string
	ProducerVersion string
	// Opsets maps an operator-set domain ("" is the default ai.onnx domain) to its version.
	Opsets map[string]int64
	Graph  Graph
}

// Graph is a decoded GraphProto. Nodes are in file order, which ONNX requires to
// be a topological order.
type Graph struct {
	Name         string
	Nodes        []Node
	Initializers []Tensor
	Inputs       []ValueInfo
	Outputs      []ValueInfo
}

// Node is one operator application.
type Node struct {
	Name       string
	OpType     string
	Domain     string
	Inputs     []string
	Outputs    []string
	Attributes []Attribute
}

// Label names a node in error messages: its name, or its first output when unnamed.
func (n *Node) Label() string {
	if n.Name != "" {
		return n.Name
	}
	if len(n.Outputs) > 0 {
		return "producing " + n.Outputs[0]
	}
	return "(unnamed)"
}

// AttributeType is ONNX's AttributeProto.AttributeType.
type AttributeType int32

// Attribute types this package decodes.
const (
	AttributeFloat   AttributeType = 1
	AttributeInt     AttributeType = 2
	AttributeString  AttributeType = 3
	AttributeTensor  AttributeType = 4
	AttributeGraph   AttributeType = 5
	AttributeFloats  AttributeType = 6
	AttributeInts    AttributeType = 7
	AttributeStrings AttributeType = 8
)

// Attribute is a decoded AttributeProto. Only the field matching Type is meaningful.
type Attribute struct {
	Name    string
	Type    AttributeType
	F       float32
	I       int64
	S       []byte
	T       *Tensor
	Floats  []float32
	Ints    []int64
	Strings [][]byte
}

// Tensor is a decoded TensorProto. Float and Int64 hold the values for FLOAT and
// integer tensors respectively; Double holds DOUBLE values.
type Tensor struct {
	Name     string
	Dims     []int64
	DataType DataType
	Float    []float32
	Double   []float64
	Int64    []int64
}

// Size is the number of elements the dims describe.
func (t *Tensor) Size() int64 {
	n := int64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// ValueInfo describes a graph input or output.
type ValueInfo struct {
	Name     string
	ElemType DataType
	Dims     []Dim
}

// Dim is one dimension of a ValueInfo: a fixed Value, or a symbolic Param such as
// "batch" (Value is then -1), or unknown (Value -1, Param "").
type Dim struct {
	Value int64
	Param string
}

// ShapeString renders dims as "1x1x28x28" with symbolic dims by name.
func (v *ValueInfo) ShapeString() string {
	parts := make([]string, len(v.Dims))
	for i, d := range v.Dims {
		switch {
		case d.Value >= 0:
			parts[i] = fmt.Sprint(d.Value)
		case d.Param != "":
			parts[i] = d.Param
		default:
			parts[i] = "?"
		}
	}
	return strings.Join(parts, "x")
}

// Attr returns the attribute named name, or nil.
func (n *Node) Attr(name string) *Attribute {
	for i := range n.Attributes {
		if n.Attributes[i].Name == name {
			return &n.Attributes[i]
		}
	}
	return nil
}

// Initializer returns the initializer named name, or nil.
func (g *Graph) Initializer(name string) *Tensor {
	for i := range g.Initializers {
		if g.Initializers[i].Name == name {
			return &g.Initializers[i]
		}
	}
	return nil
}
