package nn

import (
	"fmt"

	"gorgonia.org/tensor"
)

// concatKernel joins its inputs along axis. It replaces gorgonia's Concat, whose
// gradient is wrong once a part starts at channel 256 or later: v0.9.18's
// Concat.SymDiff takes each part's gradient with a sliceOp, and sliceOp.WriteHash
// writes the slice's start, end and step as single bytes. The gradient slices
// [s:e] and [s+256:e+256] of one node then hash alike, and the graph, which merges
// nodes of equal hash, op and shape, hands the later part the earlier part's
// gradient. densenet121's denseblock2 concatenates equal 32-channel parts up to
// channel 512, so its input gradient was wrong by orders of magnitude.
type concatKernel struct {
	axis, parts int
}

func (k *concatKernel) String() string {
	return fmt.Sprintf("Concat(axis %d, %d parts)", k.axis, k.parts)
}

func (k *concatKernel) differentiable() []bool {
	diff := make([]bool, k.parts)
	for i := range diff {
		diff[i] = true
	}
	return diff
}

func (k *concatKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	if len(in) != k.parts {
		return nil, fmt.Errorf("%v applied to %d inputs", k, len(in))
	}
	out := in[0].Clone()
	if k.axis < 0 || k.axis >= len(out) {
		return nil, fmt.Errorf("axis %d out of range for %v", k.axis, out)
	}
	for _, s := range in[1:] {
		if len(s) != len(out) {
			return nil, fmt.Errorf("cannot concatenate %v and %v: ranks differ", in[0], s)
		}
		for a := range s {
			if a != k.axis && s[a] != out[a] {
				return nil, fmt.Errorf("cannot concatenate %v and %v along axis %d", in[0], s, k.axis)
			}
		}
		out[k.axis] += s[k.axis]
	}
	return out, nil
}

// blocks returns the number of blocks before axis and, per part, the length of
// one of its contiguous blocks (its axis and everything after it): the output is
// those blocks interleaved, part by part, block by block.
func (k *concatKernel) blocks(shapes []tensor.Shape) (outer int, inner []int) {
	outer = tensor.Shape(shapes[0][:k.axis]).TotalSize()
	inner = make([]int, len(shapes))
	for p, s := range shapes {
		inner[p] = tensor.Shape(s[k.axis:]).TotalSize()
	}
	return outer, inner
}

func (k *concatKernel) forward(out []float64, in [][]float64, shapes []tensor.Shape) {
	outer, inner := k.blocks(shapes)
	pos := 0
	for o := range outer {
		for p, n := range inner {
			pos += copy(out[pos:], in[p][o*n:(o+1)*n])
		}
	}
}

func (k *concatKernel) backward(wrt int, grad, gradOut []float64, _ [][]float64, shapes []tensor.Shape) {
	outer, inner := k.blocks(shapes)
	row, offset := 0, 0
	for p, n := range inner {
		if p < wrt {
			offset += n
		}
		row += n
	}
	n := inner[wrt]
	for o := range outer {
		src := gradOut[o*row+offset : o*row+offset+n]
		for i, g := range src {
			grad[o*n+i] += g
		}
	}
}

// channelAffineKernel is y = x*scale[c] + shift[c] along axis 1, for
// BatchNormalization. Built from gorgonia ops, the (C) parameters need a Reshape
// to (1, C, 1, ...), and a Reshape shares its input's memory: when x is
// (1, C, 1, 1) (batch 1 on densenet121's 1x1 maps) nothing broadcasts, the
// shift's gradient is the output's gradient node itself, and Sub's gradient
// negated it in place through the Reshape, where the tape machine cannot see it.
type channelAffineKernel struct{}

func (channelAffineKernel) String() string         { return "ChannelAffine" }
func (channelAffineKernel) differentiable() []bool { return []bool{true, true, true} }

func (channelAffineKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	x := in[0]
	if len(x) < 2 {
		return nil, fmt.Errorf("input %v has no channel axis", x)
	}
	for _, p := range in[1:] {
		if p.TotalSize() != x[1] {
			return nil, fmt.Errorf("parameter %v for %d channels", p, x[1])
		}
	}
	return x.Clone(), nil
}

// layout returns the number of channels and the length of one channel's block.
func (channelAffineKernel) layout(x tensor.Shape) (channels, inner int) {
	return x[1], tensor.Shape(x[2:]).TotalSize()
}

func (k channelAffineKernel) forward(out []float64, in [][]float64, shapes []tensor.Shape) {
	channels, inner := k.layout(shapes[0])
	for i, v := range in[0] {
		c := i / inner % channels
		out[i] = v*in[1][c] + in[2][c]
	}
}

func (k channelAffineKernel) backward(wrt int, grad, gradOut []float64, in [][]float64, shapes []tensor.Shape) {
	channels, inner := k.layout(shapes[0])
	for i, g := range gradOut {
		c := i / inner % channels
		switch wrt {
		case 0:
			grad[i] += g * in[1][c]
		case 1:
			grad[c] += g * in[0][i]
		default:
			grad[c] += g
		}
	}
}
