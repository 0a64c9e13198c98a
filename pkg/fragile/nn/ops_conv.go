package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// windowAttrs are the sliding-window attributes Conv and the pools share, resolved
// for a 2-D spatial input.
type windowAttrs struct {
	kernel, strides, dilations [2]int
	// pads are top, left, bottom, right.
	pads [4]int
}

func (w windowAttrs) symmetric() bool { return w.pads[0] == w.pads[2] && w.pads[1] == w.pads[3] }

// readWindow reads kernel_shape (or the given default), strides, dilations, pads
// and auto_pad for an input of spatial size in, as readWindowND does, for a 1-D or
// 2-D window. A 1-D window is read as the 2-D window of height 1 that lift1D's
// reshaped input takes.
func readWindow(node *onnx.Node, in []int, kernel []int) (windowAttrs, error) {
	var w windowAttrs
	nd, err := readWindowND(node, in, kernel)
	if err != nil {
		return w, err
	}
	if len(in) == 1 {
		nd = windowND{
			kernel: []int{1, nd.kernel[0]}, strides: []int{1, nd.strides[0]}, dilations: []int{1, nd.dilations[0]},
			padBegin: []int{0, nd.padBegin[0]}, padEnd: []int{0, nd.padEnd[0]},
		}
	}
	if len(nd.kernel) != 2 {
		return w, unsupported("only 1-D and 2-D windows are supported here, got %v", nd)
	}
	copy(w.kernel[:], nd.kernel)
	copy(w.strides[:], nd.strides)
	copy(w.dilations[:], nd.dilations)
	copy(w.pads[:2], nd.padBegin)
	copy(w.pads[2:], nd.padEnd)
	return w, nil
}

// buildConv is 1-D and 2-D convolution, and hands three or more spatial axes to
// buildConvND. One group with symmetric padding runs on gorgonia's Conv2d (im2col
// and BLAS); grouped and depthwise convolution and asymmetric padding run on
// convKernel.
func buildConv(b *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	x, w, bias := in[0], in[1], in[2]
	if volumetric(x) {
		return buildConvND(b, node, in)
	}
	if x.Dims() != w.Dims() || (x.Dims() != 3 && x.Dims() != 4) {
		return nil, unsupported("convolution needs an input and a weight of one rank with at least one spatial axis (3-D or larger tensors), got input %v and weight %v", x.Shape(), w.Shape())
	}
	win, err := readWindow(node, x.Shape()[2:], w.Shape()[2:])
	if err != nil {
		return nil, err
	}
	x, unlift, err := lift1D(x)
	if err != nil {
		return nil, err
	}
	if w, _, err = lift1D(w); err != nil {
		return nil, err
	}
	if win.kernel[0] != w.Shape()[2] || win.kernel[1] != w.Shape()[3] {
		return nil, fmt.Errorf("kernel_shape %v does not match weight %v", win.kernel, w.Shape())
	}
	groups := int(attrInt(node, "group", 1))
	if groups < 1 {
		return nil, fmt.Errorf("group %d must be positive", groups)
	}
	var y *G.Node
	if groups == 1 && win.symmetric() {
		y, err = G.Conv2d(x, w, tensor.Shape(win.kernel[:]), win.pads[:2], win.strides[:], win.dilations[:])
	} else {
		y, err = applyKernel(&convKernel{
			groups: groups, strides: win.strides, dilations: win.dilations,
			padTop: win.pads[0], padLeft: win.pads[1], padBottom: win.pads[2], padRight: win.pads[3],
		}, x, w)
	}
	if err != nil {
		return nil, err
	}
	if bias != nil {
		if bias, err = G.Reshape(bias, tensor.Shape{1, bias.Shape().TotalSize(), 1, 1}); err != nil {
			return nil, err
		}
		if y, err = broadcastBinary("Add", y, bias); err != nil {
			return nil, err
		}
	}
	return unlift(y)
}

// lift1D reshapes a 3-D (N, C, L) tensor to (N, C, 1, L), so 1-D convolution and
// pooling run as 2-D ones of height 1, and returns the inverse for the result;
// a 4-D tensor passes through.
func lift1D(x *G.Node) (*G.Node, func(*G.Node) (*G.Node, error), error) {
	if x.Dims() != 3 {
		return x, func(y *G.Node) (*G.Node, error) { return y, nil }, nil
	}
	s := x.Shape()
	lifted, err := G.Reshape(x, tensor.Shape{s[0], s[1], 1, s[2]})
	return lifted, func(y *G.Node) (*G.Node, error) {
		t := y.Shape()
		return G.Reshape(y, tensor.Shape{t[0], t[1], t[3]})
	}, err
}
