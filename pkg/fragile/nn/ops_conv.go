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
// and auto_pad for an input of spatial size in. A 1-D window (in of length 1) is
// read as the 2-D window of height 1 that lift1D's reshaped input takes.
func readWindow(node *onnx.Node, in []int, kernel []int) (windowAttrs, error) {
	var w windowAttrs
	spatial := len(in)
	kernel = attrInts(node, "kernel_shape", kernel)
	strides := attrInts(node, "strides", ones(spatial))
	dilations := attrInts(node, "dilations", ones(spatial))
	pads := attrInts(node, "pads", make([]int, 2*spatial))
	if spatial == 1 && len(kernel) == 1 && len(strides) == 1 && len(dilations) == 1 && len(pads) == 2 {
		in = []int{1, in[0]}
		kernel, strides, dilations = []int{1, kernel[0]}, []int{1, strides[0]}, []int{1, dilations[0]}
		pads = []int{0, pads[0], 0, pads[1]}
	}
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
	if x.Dims() != w.Dims() || (x.Dims() != 3 && x.Dims() != 4) {
		return nil, unsupported("only 1-D and 2-D convolution (3-D and 4-D tensors) are supported, got input %v and weight %v", x.Shape(), w.Shape())
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
