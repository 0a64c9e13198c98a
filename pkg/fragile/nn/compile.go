package nn

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// builders maps each supported ONNX op type to the function that adds it to a
// graph; with folders (integer shape arithmetic) it is the whole contract of what
// this package runs.
var builders = map[string]opBuilder{
	// elementwise
	"Add": one(2, 0, buildElementwise),
	"Sub": one(2, 0, buildElementwise),
	"Mul": one(2, 0, buildElementwise),
	"Div": one(2, 0, buildElementwise),
	"Pow": one(1, 0, buildPow),
	// activation
	"Relu":        one(1, 0, buildRelu),
	"LeakyRelu":   one(1, 0, buildLeakyRelu),
	"Sigmoid":     one(1, 0, buildSigmoid),
	"Tanh":        one(1, 0, buildTanh),
	"Erf":         one(1, 0, buildErf),
	"Clip":        one(1, 0, buildClip),
	"HardSigmoid": one(1, 0, buildHardSigmoid),
	"HardSwish":   one(1, 0, buildHardSwish),
	"Softmax":     one(1, 0, buildSoftmax),
	"LogSoftmax":  one(1, 0, buildSoftmax),
	// convolution and linear
	"Conv":   one(2, 1, buildConv),
	"MatMul": one(2, 0, buildMatMul),
	"Gemm":   one(2, 1, buildGemm),
	// pooling
	"MaxPool":           one(1, 0, buildPool),
	"AveragePool":       one(1, 0, buildPool),
	"GlobalAveragePool": one(1, 0, buildGlobalPool),
	"GlobalMaxPool":     one(1, 0, buildGlobalPool),
	// normalisation and reduction
	"BatchNormalization": one(5, 0, buildBatchNorm),
	"ReduceMean":         one(1, 0, buildReduce),
	"ReduceSum":          one(1, 0, buildReduce),
	// layout
	"Identity":  one(1, 0, buildIdentity),
	"Dropout":   one(1, 0, buildIdentity),
	"Constant":  one(0, 0, buildConstant),
	"Cast":      one(1, 0, buildCast),
	"Flatten":   one(1, 0, buildFlatten),
	"Reshape":   one(1, 0, buildReshape),
	"Squeeze":   one(1, 0, buildSqueeze),
	"Unsqueeze": one(1, 0, buildSqueeze),
	"Transpose": one(1, 0, buildTranspose),
	"Concat":    one(-1, 0, buildConcat),
	"Slice":     one(1, 0, buildSlice),
	"Gather":    one(1, 0, buildGather),
	"Split":     {inputs: 1, build: buildSplit},
	"Pad":       one(1, 0, buildPad),
}

// SupportedOps lists the ONNX op types Compile accepts, sorted.
func SupportedOps() []string {
	ops := make([]string, 0, len(builders)+len(folders))
	for op := range builders {
		ops = append(ops, op)
	}
	for op := range folders {
		ops = append(ops, op) // Shape only folds; the others also build
	}
	sort.Strings(ops)
	return slices.Compact(ops)
}

// supported reports whether op has a graph builder.
func supported(op string) bool {
	_, ok := builders[op]
	return ok
}

// Network is a validated classifier: one image input, one logits output.
type Network struct {
	model *onnx.Model
	// InputName and OutputName are the ONNX names of the classifier's input and output.
	InputName, OutputName string
	// InputShape is the shape of one example, without the batch dimension (1x28x28 for mnist-7).
	InputShape []int
	// Classes is the number of output classes.
	Classes int
	// fixedBatch is the batch size the file declares (1 for mnist-7), or 0 when symbolic.
	fixedBatch int
	// params holds every FLOAT initializer by name, in file order.
	params     map[string]*onnx.Tensor
	paramOrder []string
	// consts holds INT64 initializers (shapes), read at build time.
	consts map[string]*onnx.Tensor
	// opset is the version of the default (ai.onnx) operator set, which decides
	// between some ops' semantics (Softmax's axis before and after 13).
	opset int64
	// softmaxOutput reports whether the graph ends in Softmax; the logits are then its input.
	softmaxOutput bool
}

// ErrUnsupported is wrapped by every error about a model feature this package cannot run.
var ErrUnsupported = errors.New("unsupported model")

// Compile checks that m is a classifier this package can run and prepares it.
// It builds the graph once at batch size 1, so shape errors surface here, with the
// offending node named.
func Compile(m *onnx.Model) (*Network, error) {
	n := &Network{model: m, params: map[string]*onnx.Tensor{}, consts: map[string]*onnx.Tensor{}}
	for i := range m.Graph.Initializers {
		t := &m.Graph.Initializers[i]
		switch t.DataType {
		case onnx.DataTypeFloat:
			n.params[t.Name] = t
			n.paramOrder = append(n.paramOrder, t.Name)
		case onnx.DataTypeInt64, onnx.DataTypeInt32:
			n.consts[t.Name] = t
		default:
			return nil, fmt.Errorf("%w: initializer %q has element type %s; only FLOAT weights are supported", ErrUnsupported, t.Name, t.DataType)
		}
	}
	n.opset = m.Opsets[""]
	if d, ok := m.Opsets["ai.onnx"]; ok && n.opset == 0 {
		n.opset = d
	}
	if d := n.opset; d > 21 {
		// Attributes are read in their opset <= 21 layout; later opsets move some to inputs.
		return nil, fmt.Errorf("%w: opset %d is newer than the supported 21", ErrUnsupported, d)
	}
	for i := range m.Graph.Nodes {
		node := &m.Graph.Nodes[i]
		if node.Domain != "" && node.Domain != "ai.onnx" {
			return nil, fmt.Errorf("%w: node %s: op %s from domain %q is not supported", ErrUnsupported, node.Label(), node.OpType, node.Domain)
		}
		if _, folds := folders[node.OpType]; !supported(node.OpType) && !folds {
			return nil, fmt.Errorf("%w: node %s: op %s is not supported (supported: %s)", ErrUnsupported, node.Label(), node.OpType, strings.Join(SupportedOps(), ", "))
		}
	}

	var inputs []onnx.ValueInfo
	for _, in := range m.Graph.Inputs {
		if _, isWeight := n.params[in.Name]; isWeight {
			continue
		}
		if _, isConst := n.consts[in.Name]; isConst {
			continue
		}
		inputs = append(inputs, in)
	}
	if len(inputs) != 1 {
		names := make([]string, len(inputs))
		for i := range inputs {
			names[i] = inputs[i].Name
		}
		return nil, fmt.Errorf("%w: a classifier needs exactly one input, this model has %d (%s)", ErrUnsupported, len(inputs), strings.Join(names, ", "))
	}
	in := inputs[0]
	if in.ElemType != onnx.DataTypeFloat {
		return nil, fmt.Errorf("%w: input %s has element type %s, FLOAT is required", ErrUnsupported, in.Name, in.ElemType)
	}
	if len(in.Dims) < 2 {
		return nil, fmt.Errorf("%w: input %s has shape %s; a batch dimension and at least one more are required", ErrUnsupported, in.Name, in.ShapeString())
	}
	for _, d := range in.Dims[1:] {
		if d.Value <= 0 {
			return nil, fmt.Errorf("%w: input %s has shape %s; every dimension but the batch must be fixed", ErrUnsupported, in.Name, in.ShapeString())
		}
		n.InputShape = append(n.InputShape, int(d.Value))
	}
	if in.Dims[0].Value > 0 {
		n.fixedBatch = int(in.Dims[0].Value)
	}
	n.InputName = in.Name
	if len(m.Graph.Outputs) == 0 {
		return nil, fmt.Errorf("%w: the graph declares no output", ErrUnsupported)
	}
	n.OutputName = m.Graph.Outputs[0].Name
	if last := n.producer(n.OutputName); last != nil && last.OpType == "Softmax" {
		n.softmaxOutput = true
	}

	classes, err := n.probeClasses()
	if err != nil {
		return nil, err
	}
	n.Classes = classes
	return n, nil
}

// InputSize is the number of values in one example.
func (n *Network) InputSize() int {
	size := 1
	for _, d := range n.InputShape {
		size *= d
	}
	return size
}

// ParamNames lists the FLOAT initializers (the weights) in file order.
func (n *Network) ParamNames() []string { return append([]string(nil), n.paramOrder...) }

// Param returns the weights of one initializer, shared with the model: callers must
// not modify it.
func (n *Network) Param(name string) *onnx.Tensor { return n.params[name] }

// Model is the decoded ONNX model the network was compiled from.
func (n *Network) Model() *onnx.Model { return n.model }

func (n *Network) producer(output string) *onnx.Node {
	for i := range n.model.Graph.Nodes {
		for _, o := range n.model.Graph.Nodes[i].Outputs {
			if o == output {
				return &n.model.Graph.Nodes[i]
			}
		}
	}
	return nil
}
