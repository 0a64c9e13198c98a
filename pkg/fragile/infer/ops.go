package infer

import (
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// op plans node, the i-th of the graph.
func (p *planner[T]) op(i int, node *onnx.Node) error {
	switch node.OpType {
	case "Conv":
		return p.conv(i, node)
	case "MaxPool", "AveragePool":
		return p.pool(node)
	case "GlobalAveragePool", "GlobalMaxPool":
		return p.globalPool(node)
	case "Gemm":
		return p.gemm(node)
	case "MatMul":
		return p.matMul(node)
	case "BatchNormalization":
		return p.batchNorm(node)
	case "Add", "Sub", "Mul", "Div", "Pow":
		return p.binary(node)
	case "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Clip", "HardSigmoid", "HardSwish", "Erf", "Sqrt":
		return p.unary(node)
	case "Softmax", "LogSoftmax":
		return p.softmax(node)
	case "Identity", "Dropout":
		return p.identity(node)
	case "Constant":
		return p.constant(node)
	case "ConstantOfShape":
		return p.constantOfShape(node)
	case "Cast":
		return p.cast(node)
	case "Shape":
		return p.shapeOf(node)
	case "Reshape":
		return p.reshape(node)
	case "Flatten":
		return p.flatten(node)
	case "Squeeze", "Unsqueeze":
		return p.squeeze(node)
	case "Transpose":
		return p.transpose(node)
	case "Concat":
		return p.concat(node)
	case "Split":
		return p.split(node)
	case "Slice":
		return p.slice(node)
	case "Gather":
		return p.gather(node)
	case "Pad":
		return p.pad(node)
	case "ReduceMean":
		return p.reduceMean(node)
	}
	return unsupported("op %s is not supported", node.OpType)
}
