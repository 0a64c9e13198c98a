package nn

import (
	G "gorgonia.org/gorgonia"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// buildPool is MaxPool and AveragePool with every attribute from opset 7 to 17
// (ceil_mode, dilations, count_include_pad, auto_pad, asymmetric pads): over 1-D
// and 2-D windows on poolKernel, over three or more spatial axes on poolNDKernel
// (buildPoolND).
func buildPool(_ *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	x := in[0]
	if x.Dims() < 3 {
		return nil, unsupported("pooling needs at least one spatial axis (a 3-D or larger tensor), got %v", x.Shape())
	}
	if len(node.Outputs) > 1 && node.Outputs[1] != "" {
		return nil, unsupported("the Indices output is not supported")
	}
	if node.Attr("kernel_shape") == nil {
		return nil, unsupported("kernel_shape is required")
	}
	if volumetric(x) {
		return buildPoolND(node, x)
	}
	win, err := readWindow(node, x.Shape()[2:], nil)
	if err != nil {
		return nil, err
	}
	x, unlift, err := lift1D(x)
	if err != nil {
		return nil, err
	}
	y, err := applyKernel(&poolKernel{
		average: node.OpType == "AveragePool",
		kernel:  win.kernel, strides: win.strides, dilations: win.dilations,
		padTop: win.pads[0], padLeft: win.pads[1], padBottom: win.pads[2], padRight: win.pads[3],
		ceil:     attrInt(node, "ceil_mode", 0) != 0,
		countPad: attrInt(node, "count_include_pad", 0) != 0,
	}, x)
	if err != nil {
		return nil, err
	}
	return unlift(y)
}

// buildGlobalPool is GlobalAveragePool and GlobalMaxPool: one window covering the
// whole plane.
func buildGlobalPool(_ *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	if volumetric(in[0]) {
		return buildGlobalPoolND(node, in[0])
	}
	x, unlift, err := lift1D(in[0])
	if err != nil {
		return nil, err
	}
	if x.Dims() != 4 {
		return nil, unsupported("pooling needs at least one spatial axis (a 3-D or larger tensor), got %v", in[0].Shape())
	}
	s := x.Shape()
	y, err := applyKernel(&poolKernel{
		average: node.OpType == "GlobalAveragePool",
		kernel:  [2]int{s[2], s[3]}, strides: [2]int{1, 1}, dilations: [2]int{1, 1},
	}, x)
	if err != nil {
		return nil, err
	}
	return unlift(y)
}
