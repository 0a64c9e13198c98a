package infer

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// ErrUnsupported is the product's sentinel for model features a runtime cannot run
// (onnx.ErrUnsupported, which pkg/fragile/nn wraps too).
var ErrUnsupported = onnx.ErrUnsupported

// supportedOps is the whole contract of what this package runs.
var supportedOps = []string{
	"Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "ConstantOfShape",
	"Conv", "Div", "Dropout", "Erf", "Flatten", "Gather", "Gemm", "GlobalAveragePool", "GlobalMaxPool",
	"HardSigmoid", "HardSwish", "Identity", "LeakyRelu", "LogSoftmax", "MatMul", "MaxPool", "Mul", "Pad",
	"Pow", "ReduceMean", "Relu", "Reshape", "Shape", "Sigmoid", "Slice", "Softmax", "Split", "Sqrt",
	"Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze",
}

// SupportedOps lists the ONNX op types Compile accepts, sorted.
func SupportedOps() []string { return slices.Clone(supportedOps) }

// Program is a validated classifier ready to plan runners for.
type Program struct {
	model *onnx.Model
	opset int64
	// InputName and OutputName are the ONNX names of the classifier's input and output.
	InputName, OutputName string
	// InputShape is the shape of one example, without the batch dimension.
	InputShape []int
	// Classes is the number of output classes.
	Classes int
	// logits is the value runners return: OutputName, or the input of a final Softmax.
	logits string
	// weights holds every initializer by name.
	weights map[string]*onnx.Tensor
	// uses counts the consumers of every value (the graph output counts as one).
	uses map[string]int
	// consumer is the index of the node consuming a value, for values used exactly once.
	consumer map[string]int
	// activations is the number of values one example's run-time tensors hold.
	activations int
	// probe is the plan Compile built to validate the model, kept for the first
	// float32 runner.
	probe *plan[float32]
}

// Compile checks that m is a classifier this package can run and prepares it.
// It plans the model for one example, so shape errors surface here, with the
// offending node named. Every refusal of a model feature wraps ErrUnsupported.
func Compile(m *onnx.Model) (*Program, error) {
	p := &Program{model: m, opset: 1, weights: map[string]*onnx.Tensor{}, uses: map[string]int{}, consumer: map[string]int{}}
	if v, ok := m.Opsets[""]; ok {
		p.opset = v
	}
	if v, ok := m.Opsets["ai.onnx"]; ok {
		p.opset = v
	}
	if p.opset > 21 {
		return nil, fmt.Errorf("%w: opset %d is newer than the supported 21", ErrUnsupported, p.opset)
	}
	for i := range m.Graph.Initializers {
		t := &m.Graph.Initializers[i]
		switch t.DataType {
		case onnx.DataTypeFloat, onnx.DataTypeInt64, onnx.DataTypeInt32:
			p.weights[t.Name] = t
		default:
			return nil, fmt.Errorf("%w: initializer %q has element type %s; only FLOAT weights and integer shapes are supported", ErrUnsupported, t.Name, t.DataType)
		}
	}
	for i := range m.Graph.Nodes {
		node := &m.Graph.Nodes[i]
		if node.Domain != "" && node.Domain != "ai.onnx" {
			return nil, fmt.Errorf("%w: node %s: op %s from domain %q is not supported", ErrUnsupported, node.Label(), node.OpType, node.Domain)
		}
		if !slices.Contains(supportedOps, node.OpType) {
			return nil, fmt.Errorf("%w: node %s: op %s is not supported (supported: %s)", ErrUnsupported, node.Label(), node.OpType, strings.Join(supportedOps, ", "))
		}
		for _, in := range node.Inputs {
			if in != "" {
				p.uses[in]++
				p.consumer[in] = i
			}
		}
	}
	if err := p.findInput(); err != nil {
		return nil, err
	}
	if len(m.Graph.Outputs) == 0 {
		return nil, fmt.Errorf("%w: the graph declares no output", ErrUnsupported)
	}
	p.OutputName = m.Graph.Outputs[0].Name
	p.logits = p.OutputName
	if i, last := p.producer(p.OutputName); last != nil && last.OpType == "Softmax" && len(last.Inputs) > 0 {
		// Verification compares top-1 labels, which a final Softmax does not change:
		// return its input, as the gradient builder does (better precision).
		p.logits = last.Inputs[0]
		_ = i
	}
	p.uses[p.logits]++
	probe, err := newPlan[float32](p)
	if err != nil {
		return nil, err
	}
	p.Classes = len(probe.output.data)
	if p.Classes < 2 || p.Classes > math.MaxInt32 {
		return nil, fmt.Errorf("%w: output %s has %d classes", ErrUnsupported, p.OutputName, p.Classes)
	}
	p.probe = probe
	p.activations = probe.values
	return p, nil
}

func (p *Program) findInput() error {
	var inputs []onnx.ValueInfo
	for _, in := range p.model.Graph.Inputs {
		if _, isWeight := p.weights[in.Name]; !isWeight {
			inputs = append(inputs, in)
		}
	}
	if len(inputs) != 1 {
		names := make([]string, len(inputs))
		for i := range inputs {
			names[i] = inputs[i].Name
		}
		return fmt.Errorf("%w: a classifier needs exactly one input, this model has %d (%s)", ErrUnsupported, len(inputs), strings.Join(names, ", "))
	}
	in := inputs[0]
	if in.ElemType != onnx.DataTypeFloat {
		return fmt.Errorf("%w: input %s has element type %s, FLOAT is required", ErrUnsupported, in.Name, in.ElemType)
	}
	if len(in.Dims) < 2 {
		return fmt.Errorf("%w: input %s has shape %s; a batch dimension and at least one more are required", ErrUnsupported, in.Name, in.ShapeString())
	}
	if b := in.Dims[0].Value; b > 1 {
		// Runners compute one example at a time; a file that fixes a larger batch
		// would have its shape constants written for that batch.
		return fmt.Errorf("%w: input %s has shape %s; the batch dimension must be 1 or symbolic", ErrUnsupported, in.Name, in.ShapeString())
	}
	for _, d := range in.Dims[1:] {
		if d.Value <= 0 {
			return fmt.Errorf("%w: input %s has shape %s; every dimension but the batch must be fixed", ErrUnsupported, in.Name, in.ShapeString())
		}
		p.InputShape = append(p.InputShape, int(d.Value))
	}
	p.InputName = in.Name
	return nil
}

// ActivationBytes is the memory the model's activations take at batch size batch
// in float32: every value the graph computes, input included, held at once.
func (p *Program) ActivationBytes(batch int) int64 { return 4 * int64(batch) * int64(p.activations) }

// InputSize is the number of values in one example.
func (p *Program) InputSize() int {
	size := 1
	for _, d := range p.InputShape {
		size *= d
	}
	return size
}

func (p *Program) producer(output string) (int, *onnx.Node) {
	for i := range p.model.Graph.Nodes {
		if slices.Contains(p.model.Graph.Nodes[i].Outputs, output) {
			return i, &p.model.Graph.Nodes[i]
		}
	}
	return -1, nil
}

// unsupported reports a model feature this package cannot run; it wraps ErrUnsupported.
func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnsupported}, args...)...)
}
