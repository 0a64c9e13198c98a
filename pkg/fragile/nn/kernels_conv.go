package nn

import (
	"fmt"

	"gorgonia.org/tensor"
)

// convKernel is 2-D convolution (cross-correlation, as ONNX defines Conv) of x
// (N, C, H, W) with w (M, C/groups, kH, kW), for any group count, stride, dilation
// and asymmetric padding: what gorgonia's Conv2d (one group, symmetric padding)
// cannot express. The bias is added by the builder.
type convKernel struct {
	groups              int
	strides, dilations  [2]int
	padTop, padLeft     int
	padBottom, padRight int
}

func (k *convKernel) String() string {
	return fmt.Sprintf("Conv(groups %d, strides %v, dilations %v, pads %d,%d,%d,%d)", k.groups, k.strides, k.dilations, k.padTop, k.padLeft, k.padBottom, k.padRight)
}

func (k *convKernel) differentiable() []bool { return []bool{true, true} }

func (k *convKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	x, w := in[0], in[1]
	if len(x) != 4 || len(w) != 4 {
		return nil, fmt.Errorf("convolution needs 4-D input and weight, got %v and %v", x, w)
	}
	if x[1]%k.groups != 0 || w[0]%k.groups != 0 || w[1]*k.groups != x[1] {
		return nil, fmt.Errorf("weight %v does not fit input %v in %d groups", w, x, k.groups)
	}
	oh := convOut(x[2], w[2], k.strides[0], k.dilations[0], k.padTop+k.padBottom)
	ow := convOut(x[3], w[3], k.strides[1], k.dilations[1], k.padLeft+k.padRight)
	if oh < 1 || ow < 1 {
		return nil, fmt.Errorf("kernel %v is larger than the padded input %v", w[2:], x[2:])
	}
	return tensor.Shape{x[0], w[0], oh, ow}, nil
}

// convOut is the output length of a window sliding over size values with the given
// kernel, stride, dilation and total padding.
func convOut(size, kernel, stride, dilation, pad int) int {
	return (size+pad-(kernel-1)*dilation-1)/stride + 1
}

// each calls fn(x0, xs, wi, y0, n) for every weight w[wi] and output row it
// touches: w[wi] multiplies x[x0 + t*xs] into y[y0 + t] for t < n, the output
// positions of the row whose input position falls inside the unpadded input.
func (k *convKernel) each(shapes []tensor.Shape, fn func(x0, xs, wi, y0, n int)) {
	x, w := shapes[0], shapes[1]
	n, c, h, wd := x[0], x[1], x[2], x[3]
	m, cg, kh, kw := w[0], w[1], w[2], w[3]
	sh, sw := k.strides[0], k.strides[1]
	oh := convOut(h, kh, sh, k.dilations[0], k.padTop+k.padBottom)
	ow := convOut(wd, kw, sw, k.dilations[1], k.padLeft+k.padRight)
	mg := m / k.groups
	for j := range kw {
		// Output columns whose input column ix = xx*sw - padLeft + j*dilation is inside.
		off := j*k.dilations[1] - k.padLeft
		first := max(0, ceilDiv(-off, sw))
		last := min(ow-1, floorDiv(wd-1-off, sw))
		if last < first {
			continue
		}
		for b := range n {
			for o := range m {
				g := o / mg
				for ci := range cg {
					xc := (b*c + g*cg + ci) * h * wd
					for i := range kh {
						wi := ((o*cg+ci)*kh+i)*kw + j
						for y := range oh {
							iy := y*sh - k.padTop + i*k.dilations[0]
							if iy < 0 || iy >= h {
								continue
							}
							fn(xc+iy*wd+first*sw+off, sw, wi, ((b*m+o)*oh+y)*ow+first, last-first+1)
						}
					}
				}
			}
		}
	}
}

func ceilDiv(a, b int) int { return -floorDiv(-a, b) }
func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func (k *convKernel) forward(out []float64, in [][]float64, shapes []tensor.Shape) {
	x, w := in[0], in[1]
	k.each(shapes, func(x0, xs, wi, y0, n int) {
		wv := w[wi]
		for t := range n {
			out[y0+t] += wv * x[x0+t*xs]
		}
	})
}

func (k *convKernel) backward(wrt int, grad, gradOut []float64, in [][]float64, shapes []tensor.Shape) {
	x, w := in[0], in[1]
	if wrt == 0 {
		k.each(shapes, func(x0, xs, wi, y0, n int) {
			wv := w[wi]
			for t := range n {
				grad[x0+t*xs] += wv * gradOut[y0+t]
			}
		})
		return
	}
	k.each(shapes, func(x0, xs, wi, y0, n int) {
		sum := 0.0
		for t := range n {
			sum += x[x0+t*xs] * gradOut[y0+t]
		}
		grad[wi] += sum
	})
}
