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

// each calls fn(xi, wi, yi) for every product x[xi]*w[wi] that contributes to y[yi].
func (k *convKernel) each(shapes []tensor.Shape, fn func(xi, wi, yi int)) {
	x, w := shapes[0], shapes[1]
	n, c, h, wd := x[0], x[1], x[2], x[3]
	m, cg, kh, kw := w[0], w[1], w[2], w[3]
	oh := convOut(h, kh, k.strides[0], k.dilations[0], k.padTop+k.padBottom)
	ow := convOut(wd, kw, k.strides[1], k.dilations[1], k.padLeft+k.padRight)
	mg := m / k.groups
	for b := range n {
		for o := range m {
			g := o / mg
			for ci := range cg {
				xc := (b*c + g*cg + ci) * h * wd
				wc := (o*cg + ci) * kh * kw
				for i := range kh {
					for j := range kw {
						wi := wc + i*kw + j
						for y := range oh {
							iy := y*k.strides[0] - k.padTop + i*k.dilations[0]
							if iy < 0 || iy >= h {
								continue
							}
							yrow := ((b*m+o)*oh + y) * ow
							for xx := range ow {
								ix := xx*k.strides[1] - k.padLeft + j*k.dilations[1]
								if ix < 0 || ix >= wd {
									continue
								}
								fn(xc+iy*wd+ix, wi, yrow+xx)
							}
						}
					}
				}
			}
		}
	}
}

func (k *convKernel) forward(out []float64, in [][]float64, shapes []tensor.Shape) {
	x, w := in[0], in[1]
	k.each(shapes, func(xi, wi, yi int) { out[yi] += x[xi] * w[wi] })
}

func (k *convKernel) backward(wrt int, grad, gradOut []float64, in [][]float64, shapes []tensor.Shape) {
	x, w := in[0], in[1]
	if wrt == 0 {
		k.each(shapes, func(xi, wi, yi int) { grad[xi] += w[wi] * gradOut[yi] })
		return
	}
	k.each(shapes, func(xi, wi, yi int) { grad[wi] += x[xi] * gradOut[yi] })
}
