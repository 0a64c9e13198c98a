package nn

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"
)

// The kernels of this file slide a window over any number of spatial axes: 3-D
// (volumetric) convolution and pooling on (N, C, D, H, W) tensors, and beyond. The
// 1-D and 2-D forms keep their own kernels (kernels_conv.go, kernels_pool.go) and
// gorgonia's im2col Conv2d, which the product's image models run on.
//
// Everything a 5-D tensor touches happens inside the kernels, bias included:
// gorgonia's broadcasting handles at most 4 axes, so no 5-D value is ever
// broadcast or reduced by a gorgonia op.

// windowND is a sliding window over len(kernel) spatial axes.
type windowND struct {
	kernel, strides, dilations []int
	// padBegin and padEnd are the padding before and after each spatial axis.
	padBegin, padEnd []int
}

func (w windowND) String() string {
	return fmt.Sprintf("kernel %v, strides %v, dilations %v, pads %v/%v", w.kernel, w.strides, w.dilations, w.padBegin, w.padEnd)
}

// rowMajor returns the row-major strides of shape and its element count.
func rowMajor(shape []int) (strides []int, size int) {
	strides = make([]int, len(shape))
	size = 1
	for a := len(shape) - 1; a >= 0; a-- {
		strides[a] = size
		size *= shape[a]
	}
	return strides, size
}

// unravel writes the multi-index of flat position i of shape into idx.
func unravel(i int, shape, idx []int) {
	for a := len(shape) - 1; a >= 0; a-- {
		idx[a] = i % shape[a]
		i /= shape[a]
	}
}

// convNDKernel is convolution (cross-correlation, as ONNX defines Conv) of
// x (N, C, spatial...) with w (M, C/groups, kernel...) over any number of spatial
// axes, for any group count, stride, dilation and asymmetric padding, plus an
// optional bias (M) as the third input.
type convNDKernel struct {
	groups int
	// win carries strides, dilations and pads; the kernel size is the weight's.
	win  windowND
	bias bool
}

func (k *convNDKernel) String() string {
	return fmt.Sprintf("ConvND(groups %d, strides %v, dilations %v, pads %v/%v, bias %t)", k.groups, k.win.strides, k.win.dilations, k.win.padBegin, k.win.padEnd, k.bias)
}

func (k *convNDKernel) differentiable() []bool {
	if k.bias {
		return []bool{true, true, true}
	}
	return []bool{true, true}
}

// outDims is the output's spatial size for input spatial size in and kernel ks.
func (k *convNDKernel) outDims(in, ks []int) []int {
	out := make([]int, len(in))
	for a := range in {
		out[a] = convOut(in[a], ks[a], k.win.strides[a], k.win.dilations[a], k.win.padBegin[a]+k.win.padEnd[a])
	}
	return out
}

func (k *convNDKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	x, w := in[0], in[1]
	spatial := len(k.win.strides)
	if len(x) != spatial+2 || len(w) != spatial+2 {
		return nil, fmt.Errorf("%d-D convolution needs %d-D input and weight, got %v and %v", spatial, spatial+2, x, w)
	}
	if x[1]%k.groups != 0 || w[0]%k.groups != 0 || w[1]*k.groups != x[1] {
		return nil, fmt.Errorf("weight %v does not fit input %v in %d groups", w, x, k.groups)
	}
	if k.bias {
		// The builder reshapes the bias (M) to (1, M, 1, ...), the rank kernelOp's type wants.
		if b := in[2]; b.TotalSize() != w[0] || len(b) != len(x) || b[1] != w[0] {
			return nil, fmt.Errorf("bias %v does not fit %d output channels", b, w[0])
		}
	}
	out := tensor.Shape{x[0], w[0]}
	for _, d := range k.outDims(x[2:], w[2:]) {
		if d < 1 {
			return nil, fmt.Errorf("kernel %v is larger than the padded input %v", w[2:], x[2:])
		}
		out = append(out, d)
	}
	return out, nil
}

// each calls fn(x0, xs, wi, y0, n) for every weight w[wi] and output row (a run
// along the last spatial axis) it touches: w[wi] multiplies x[x0 + t*xs] into
// y[y0 + t] for t < n, the output positions of the row whose input position falls
// inside the unpadded input.
func (k *convNDKernel) each(shapes []tensor.Shape, fn func(x0, xs, wi, y0, n int)) {
	x, w := shapes[0], shapes[1]
	n, c, m, cg := x[0], x[1], w[0], w[1]
	in, ks := []int(x[2:]), []int(w[2:])
	out := k.outDims(in, ks)
	last := len(in) - 1
	inStrides, inSize := rowMajor(in)
	outStrides, outSize := rowMajor(out)
	_, kSize := rowMajor(ks)
	mg := m / k.groups
	st := k.win.strides[last]

	_, leading := rowMajor(out[:last])
	offset := make([]int, len(in)) // one kernel tap's position
	pos := make([]int, last)       // an output position along the leading axes
	type row struct{ x, y int }
	var rows []row
	for tap := range kSize {
		unravel(tap, ks, offset)
		// Output positions along the last axis whose input position
		// t*st - padBegin + offset*dilation is inside.
		off := offset[last]*k.win.dilations[last] - k.win.padBegin[last]
		first := max(0, ceilDiv(-off, st))
		end := min(out[last]-1, floorDiv(in[last]-1-off, st))
		if end < first {
			continue
		}
		// The output rows along the leading axes whose input row is inside.
		rows = rows[:0]
	positions:
		for p := range leading {
			unravel(p, out[:last], pos)
			r := row{}
			for a, o := range pos {
				i := o*k.win.strides[a] - k.win.padBegin[a] + offset[a]*k.win.dilations[a]
				if i < 0 || i >= in[a] {
					continue positions
				}
				r.x += i * inStrides[a]
				r.y += o * outStrides[a]
			}
			rows = append(rows, r)
		}
		for b := range n {
			for o := range m {
				g := o / mg
				yc := (b*m + o) * outSize
				for ci := range cg {
					wi := (o*cg+ci)*kSize + tap
					xc := (b*c+g*cg+ci)*inSize + first*st + off
					for _, r := range rows {
						fn(xc+r.x, st, wi, yc+r.y+first, end-first+1)
					}
				}
			}
		}
	}
}

// channelRuns calls fn(o, y0, size) for each output channel o and each example's
// contiguous block of it.
func channelRuns(out tensor.Shape, fn func(o, y0, size int)) {
	_, size := rowMajor(out[2:])
	for b := range out[0] {
		for o := range out[1] {
			fn(o, (b*out[1]+o)*size, size)
		}
	}
}

func (k *convNDKernel) forward(out []float64, in [][]float64, shapes []tensor.Shape) {
	x, w := in[0], in[1]
	k.each(shapes, func(x0, xs, wi, y0, n int) {
		wv := w[wi]
		for t := range n {
			out[y0+t] += wv * x[x0+t*xs]
		}
	})
	if k.bias {
		outShape, _ := k.outShape(shapes)
		channelRuns(outShape, func(o, y0, size int) {
			for t := range size {
				out[y0+t] += in[2][o]
			}
		})
	}
}

func (k *convNDKernel) backward(wrt int, grad, gradOut []float64, in [][]float64, shapes []tensor.Shape) {
	x, w := in[0], in[1]
	switch wrt {
	case 0:
		k.each(shapes, func(x0, xs, wi, y0, n int) {
			wv := w[wi]
			for t := range n {
				grad[x0+t*xs] += wv * gradOut[y0+t]
			}
		})
	case 1:
		k.each(shapes, func(x0, xs, wi, y0, n int) {
			sum := 0.0
			for t := range n {
				sum += x[x0+t*xs] * gradOut[y0+t]
			}
			grad[wi] += sum
		})
	default:
		outShape, _ := k.outShape(shapes)
		channelRuns(outShape, func(o, y0, size int) {
			for _, g := range gradOut[y0 : y0+size] {
				grad[o] += g
			}
		})
	}
}

// poolNDKernel is max or average pooling over any number of spatial axes, with
// the attribute set of the 2-D poolKernel: asymmetric pads, dilations, ceil_mode
// and count_include_pad.
type poolNDKernel struct {
	average  bool
	win      windowND
	ceil     bool
	countPad bool
}

func (k *poolNDKernel) String() string {
	kind := "MaxPool"
	if k.average {
		kind = "AveragePool"
	}
	return fmt.Sprintf("%sND(%v, ceil %t, count pads %t)", kind, k.win, k.ceil, k.countPad)
}

func (k *poolNDKernel) differentiable() []bool { return []bool{true} }

func (k *poolNDKernel) outDims(in []int) []int {
	out := make([]int, len(in))
	for a := range in {
		out[a] = poolOut(in[a], k.win.kernel[a], k.win.strides[a], k.win.dilations[a], k.win.padBegin[a], k.win.padEnd[a], k.ceil)
	}
	return out
}

func (k *poolNDKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	x := in[0]
	if len(x) != len(k.win.kernel)+2 {
		return nil, fmt.Errorf("%d-D pooling needs a %d-D input, got %v", len(k.win.kernel), len(k.win.kernel)+2, x)
	}
	out := tensor.Shape{x[0], x[1]}
	for _, d := range k.outDims(x[2:]) {
		if d < 1 {
			return nil, fmt.Errorf("kernel %v is larger than the padded input %v", k.win.kernel, x[2:])
		}
		out = append(out, d)
	}
	return out, nil
}

// windows returns, for every output position of one plane in row-major order, the
// offsets within the input plane of its window's elements (inside the input,
// padding excluded, in row-major window order), and the average's divisor.
func (k *poolNDKernel) windows(in []int) (offsets [][]int, divisors []float64) {
	out := k.outDims(in)
	inStrides, _ := rowMajor(in)
	_, outSize := rowMajor(out)
	// Per axis and output position: the input positions inside, and how much of
	// the window lies inside the padded input (count_include_pad's divisor).
	taps := make([][][]int, len(in))
	spans := make([][]int, len(in))
	for a := range in {
		taps[a] = make([][]int, out[a])
		spans[a] = make([]int, out[a])
		for o := range out[a] {
			start := o*k.win.strides[a] - k.win.padBegin[a]
			for j := range k.win.kernel[a] {
				if i := start + j*k.win.dilations[a]; i >= 0 && i < in[a] {
					taps[a][o] = append(taps[a][o], i*inStrides[a])
				}
			}
			// As poolKernel: PyTorch's count_include_pad clips a ceil-mode window at
			// the end padding.
			spans[a][o] = min(start+k.win.kernel[a], in[a]+k.win.padEnd[a]) - start
		}
	}
	offsets = make([][]int, outSize)
	divisors = make([]float64, outSize)
	pos := make([]int, len(in))
	for p := range outSize {
		unravel(p, out, pos)
		window := []int{0}
		divisor := 1
		for a, o := range pos {
			next := make([]int, 0, len(window)*len(taps[a][o]))
			for _, w := range window {
				for _, t := range taps[a][o] {
					next = append(next, w+t)
				}
			}
			window = next
			if k.countPad {
				divisor *= spans[a][o]
			}
		}
		if !k.countPad {
			divisor = len(window)
		}
		offsets[p], divisors[p] = window, float64(divisor)
	}
	return offsets, divisors
}

func (k *poolNDKernel) forward(out []float64, in [][]float64, shapes []tensor.Shape) {
	x, s := in[0], shapes[0]
	offsets, divisors := k.windows(s[2:])
	_, inSize := rowMajor(s[2:])
	for plane := range s[0] * s[1] {
		base := plane * inSize
		for p, window := range offsets {
			o := plane*len(offsets) + p
			if k.average {
				sum := 0.0
				for _, i := range window {
					sum += x[base+i]
				}
				out[o] = sum / divisors[p]
				continue
			}
			best := math.Inf(-1)
			for _, i := range window {
				best = math.Max(best, x[base+i])
			}
			out[o] = best
		}
	}
}

func (k *poolNDKernel) backward(_ int, grad, gradOut []float64, in [][]float64, shapes []tensor.Shape) {
	x, s := in[0], shapes[0]
	offsets, divisors := k.windows(s[2:])
	_, inSize := rowMajor(s[2:])
	for plane := range s[0] * s[1] {
		base := plane * inSize
		for p, window := range offsets {
			g := gradOut[plane*len(offsets)+p]
			if k.average {
				for _, i := range window {
					grad[base+i] += g / divisors[p]
				}
				continue
			}
			// The first maximum takes the gradient, as in poolKernel.
			best := -1
			for _, i := range window {
				if best < 0 || x[base+i] > x[base+best] {
					best = i
				}
			}
			if best >= 0 {
				grad[base+best] += g
			}
		}
	}
}
