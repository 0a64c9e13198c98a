package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// Convolution and pooling over three or more spatial axes ((N, C, D, H, W) and
// beyond), on the kernels of kernels_volume.go. buildConv, buildPool and
// buildGlobalPool hand such inputs here; the 1-D and 2-D forms stay on their own
// paths.

// volumetric reports whether x has three or more spatial axes.
func volumetric(x *G.Node) bool { return x.Dims() >= 5 }

// readWindowND reads kernel_shape (or the given default), strides, dilations,
// pads and auto_pad for an input of spatial size in, any number of axes.
func readWindowND(node *onnx.Node, in []int, kernel []int) (windowND, error) {
	spatial := len(in)
	w := windowND{
		kernel:    attrInts(node, "kernel_shape", kernel),
		strides:   attrInts(node, "strides", ones(spatial)),
		dilations: attrInts(node, "dilations", ones(spatial)),
		padBegin:  make([]int, spatial),
		padEnd:    make([]int, spatial),
	}
	pads := attrInts(node, "pads", make([]int, 2*spatial))
	if len(w.kernel) != spatial || len(w.strides) != spatial || len(w.dilations) != spatial || len(pads) != 2*spatial {
		return w, fmt.Errorf("kernel_shape %v, strides %v, dilations %v and pads %v do not fit an input of %d spatial axes",
			w.kernel, w.strides, w.dilations, pads, spatial)
	}
	for a := range spatial {
		if w.kernel[a] < 1 || w.strides[a] < 1 || w.dilations[a] < 1 {
			return w, fmt.Errorf("kernel_shape %v, strides %v and dilations %v must be positive", w.kernel, w.strides, w.dilations)
		}
	}
	switch autoPad := attrString(node, "auto_pad", "NOTSET"); autoPad {
	case "NOTSET", "":
		copy(w.padBegin, pads[:spatial])
		copy(w.padEnd, pads[spatial:])
	case "VALID":
	case "SAME_UPPER", "SAME_LOWER":
		for a := range spatial {
			out := (in[a] + w.strides[a] - 1) / w.strides[a]
			total := max(0, (out-1)*w.strides[a]+(w.kernel[a]-1)*w.dilations[a]+1-in[a])
			small, big := total/2, total-total/2
			if autoPad == "SAME_UPPER" {
				w.padBegin[a], w.padEnd[a] = small, big
			} else {
				w.padBegin[a], w.padEnd[a] = big, small
			}
		}
	default:
		return w, unsupported("auto_pad %q is not supported", autoPad)
	}
	for a := range spatial {
		if w.padBegin[a] < 0 || w.padEnd[a] < 0 {
			return w, fmt.Errorf("negative pads %v", pads)
		}
	}
	return w, nil
}

// buildConvND is Conv over three or more spatial axes, bias included, on
// convNDKernel.
func buildConvND(_ *builder, node *onnx.Node, in []*G.Node) (*G.Node, error) {
	x, w, bias := in[0], in[1], in[2]
	if x.Dims() != w.Dims() {
		return nil, fmt.Errorf("input %v and weight %v differ in rank", x.Shape(), w.Shape())
	}
	win, err := readWindowND(node, x.Shape()[2:], w.Shape()[2:])
	if err != nil {
		return nil, err
	}
	for a, k := range win.kernel {
		if k != w.Shape()[2+a] {
			return nil, fmt.Errorf("kernel_shape %v does not match weight %v", win.kernel, w.Shape())
		}
	}
	groups := int(attrInt(node, "group", 1))
	if groups < 1 {
		return nil, fmt.Errorf("group %d must be positive", groups)
	}
	k := &convNDKernel{groups: groups, win: win, bias: bias != nil}
	if bias == nil {
		return applyKernel(k, x, w)
	}
	// kernelOp's inputs share one rank: the bias (M) becomes (1, M, 1, ...).
	shape := ones(x.Dims())
	shape[1] = bias.Shape().TotalSize()
	if bias, err = G.Reshape(bias, tensor.Shape(shape)); err != nil {
		return nil, err
	}
	return applyKernel(k, x, w, bias)
}

// buildPoolND is MaxPool and AveragePool over three or more spatial axes, with
// the attributes buildPool reads for 1-D and 2-D windows.
func buildPoolND(node *onnx.Node, x *G.Node) (*G.Node, error) {
	win, err := readWindowND(node, x.Shape()[2:], nil)
	if err != nil {
		return nil, err
	}
	return applyKernel(&poolNDKernel{
		average:  node.OpType == "AveragePool",
		win:      win,
		ceil:     attrInt(node, "ceil_mode", 0) != 0,
		countPad: attrInt(node, "count_include_pad", 0) != 0,
	}, x)
}

// buildGlobalPoolND is GlobalAveragePool and GlobalMaxPool over three or more
// spatial axes: one window covering them all.
func buildGlobalPoolND(node *onnx.Node, x *G.Node) (*G.Node, error) {
	spatial := x.Dims() - 2
	return applyKernel(&poolNDKernel{
		average: node.OpType == "GlobalAveragePool",
		win: windowND{
			kernel: append([]int(nil), x.Shape()[2:]...), strides: ones(spatial), dilations: ones(spatial),
			padBegin: make([]int, spatial), padEnd: make([]int, spatial),
		},
	}, x)
}
