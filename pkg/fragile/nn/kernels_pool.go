package nn

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"
)

// poolKernel is 2-D max or average pooling of x (N, C, H, W) with ONNX's full
// attribute set: asymmetric pads, dilations (max), ceil_mode and
// count_include_pad (average). gorgonia's MaxPool2D takes symmetric pads only and
// it has no average pool.
type poolKernel struct {
	average             bool
	kernel              [2]int
	strides, dilations  [2]int
	padTop, padLeft     int
	padBottom, padRight int
	ceil                bool
	// countPad divides an average by the whole window, padding included.
	countPad bool
}

func (k *poolKernel) String() string {
	kind := "MaxPool"
	if k.average {
		kind = "AveragePool"
	}
	return fmt.Sprintf("%s(kernel %v, strides %v, dilations %v, pads %d,%d,%d,%d, ceil %t, count pads %t)", kind, k.kernel, k.strides, k.dilations, k.padTop, k.padLeft, k.padBottom, k.padRight, k.ceil, k.countPad)
}

func (k *poolKernel) differentiable() []bool { return []bool{true} }

// poolOut is the output length along one axis. In ceil mode a last window that
// would start inside the end padding is dropped, as PyTorch (and ONNX since
// opset 19 states) does.
func poolOut(size, kernel, stride, dilation, padBegin, padEnd int, ceil bool) int {
	span := size + padBegin + padEnd - (kernel-1)*dilation - 1
	if !ceil {
		return span/stride + 1
	}
	out := (span+stride-1)/stride + 1
	if (out-1)*stride >= size+padBegin {
		out--
	}
	return out
}

func (k *poolKernel) dims(x tensor.Shape) (oh, ow int) {
	oh = poolOut(x[2], k.kernel[0], k.strides[0], k.dilations[0], k.padTop, k.padBottom, k.ceil)
	ow = poolOut(x[3], k.kernel[1], k.strides[1], k.dilations[1], k.padLeft, k.padRight, k.ceil)
	return oh, ow
}

func (k *poolKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	x := in[0]
	if len(x) != 4 {
		return nil, fmt.Errorf("2-D pooling needs a 4-D input, got %v", x)
	}
	oh, ow := k.dims(x)
	if oh < 1 || ow < 1 {
		return nil, fmt.Errorf("kernel %v is larger than the padded input %v", k.kernel, x[2:])
	}
	return tensor.Shape{x[0], x[1], oh, ow}, nil
}

// window calls fn with the flat input indices of one output's window (inside the
// input, padding excluded) and returns the average's divisor.
func (k *poolKernel) window(x tensor.Shape, plane, y, xx int, fn func(i int)) float64 {
	h, w := x[2], x[3]
	y0, x0 := y*k.strides[0]-k.padTop, xx*k.strides[1]-k.padLeft
	inside := 0
	for i := range k.kernel[0] {
		iy := y0 + i*k.dilations[0]
		if iy < 0 || iy >= h {
			continue
		}
		for j := range k.kernel[1] {
			ix := x0 + j*k.dilations[1]
			if ix < 0 || ix >= w {
				continue
			}
			inside++
			fn(plane*h*w + iy*w + ix)
		}
	}
	if !k.countPad {
		return float64(inside)
	}
	// The window clipped to the padded input (PyTorch's count_include_pad: the part
	// of a ceil-mode window beyond the end padding does not count).
	rows := min(y0+k.kernel[0], h+k.padBottom) - y0
	cols := min(x0+k.kernel[1], w+k.padRight) - x0
	return float64(rows * cols)
}

func (k *poolKernel) forward(out []float64, in [][]float64, shapes []tensor.Shape) {
	x, s := in[0], shapes[0]
	oh, ow := k.dims(s)
	for plane := range s[0] * s[1] {
		for y := range oh {
			for xx := range ow {
				o := (plane*oh+y)*ow + xx
				if k.average {
					sum := 0.0
					div := k.window(s, plane, y, xx, func(i int) { sum += x[i] })
					out[o] = sum / div
					continue
				}
				best := math.Inf(-1)
				k.window(s, plane, y, xx, func(i int) { best = math.Max(best, x[i]) })
				out[o] = best
			}
		}
	}
}

func (k *poolKernel) backward(_ int, grad, gradOut []float64, in [][]float64, shapes []tensor.Shape) {
	x, s := in[0], shapes[0]
	oh, ow := k.dims(s)
	for plane := range s[0] * s[1] {
		for y := range oh {
			for xx := range ow {
				g := gradOut[(plane*oh+y)*ow+xx]
				if k.average {
					var idx []int
					div := k.window(s, plane, y, xx, func(i int) { idx = append(idx, i) })
					for _, i := range idx {
						grad[i] += g / div
					}
					continue
				}
				// The first maximum takes the gradient, as in gorgonia's MaxPool2D.
				best := -1
				k.window(s, plane, y, xx, func(i int) {
					if best < 0 || x[i] > x[best] {
						best = i
					}
				})
				if best >= 0 {
					grad[best] += g
				}
			}
		}
	}
}
