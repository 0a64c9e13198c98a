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
// and auto_pad for an input of spatial size in.
func readWindow(node *onnx.Node, in []int, kernel []int) (windowAttrs, error) {
	var w windowAttrs
	kernel = attrInts(node, "kernel_shape", kernel)
	strides := attrInts(node, "strides", []int{1, 1})
	dilations := attrInts(node, "dilations", []int{1, 1})
	pads := attrInts(node, "pads", []int{0, 0, 0, 0})
	if len(kernel) != 2 || len(strides) != 2 || len(dilations) != 2 || len(pads) != 4 {
		return w, unsupported("only 2-D windows are supported: kernel_shape %v, strides %v, dilations %v, pads %v", kernel, strides, dilations, pads)
	}
	for i := range 2 {
		if kernel[i] < 1 || strides[i] < 1 || dilations[i] < 1 {
			return w, fmt.Errorf("kernel_shape %v, strides %v and dilations %v must be positive", kernel, strides, dilations)
		}
		w.kernel[i], w.strides[i], w.dilations[i] = kernel[i], strides[i], dilations[i]
	}
	switch autoPad := attrString(node, "auto_pad", "NOTSET"); autoPad {
	case "NOTSET", "":
		copy(w.pads[:], pads)
	case "VALID":
	case "SAME_UPPER", "SAME_LOWER":
		for i := range 2 {
			out := (in[i] + w.strides[i] - 1) / w.strides[i]
			total := max(0, (out-1)*w.strides[i]+(w.kernel[i]-1)*w.dilations[i]+1-in[i])
			small, big := total/2, total-total/2
			if autoPad == "SAME_UPPER" {
				w.pads[i], w.pads[i+2] = small, big
			} else {
				w.pads[i], w.pads[i+2] = big, small
			}
		}
	default:
		return w, unsupported("auto_pad %q is not supported", autoPad)
	}
	for _, p := range w.pads {
		if p < 0 {
			return w, fmt.Errorf("negative pads %v", w.pads)
		}
	}
	return w, nil
}

// buildConv is 2-D convolution. One group with symmetric padding runs on
// gorgonia's Conv2d (im2col and BLAS); grouped and depthwise convolution and
// asymmetric padding run on convKernel.
func buildConv(b *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	x, w, bias := in[0], in[1], in[2]
	if x.Dims() != 4 || w.Dims() != 4 {
		return nil, unsupported("only 2-D convolution (4-D tensors) is supported, got input %v and weight %v", x.Shape(), w.Shape())
	}
	win, err := readWindow(node, x.Shape()[2:], w.Shape()[2:])
	if err != nil {
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
	if err != nil || bias == nil {
		return y, err
	}
	if bias, err = G.Reshape(bias, tensor.Shape{1, bias.Shape().TotalSize(), 1, 1}); err != nil {
		return nil, err
	}
	return broadcastBinary("Add", y, bias)
}
