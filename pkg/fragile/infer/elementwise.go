package infer

import (
	"fmt"
	"math"
	"slices"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// activation is an elementwise function fused into a kernel's output pass.
type activation struct {
	kind     string // "", "Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish"
	a, b     float64
	min, max float64
}

// activationOf reads node as an activation, reporting false for other ops or for a
// Clip whose bounds are not constants.
func (p *planner[T]) activationOf(node *onnx.Node) (activation, bool) {
	act := activation{kind: node.OpType}
	switch node.OpType {
	case "Relu", "Sigmoid", "Tanh", "HardSwish":
	case "LeakyRelu":
		act.a = attrFloat(node, "alpha", 0.01)
	case "HardSigmoid":
		act.a, act.b = attrFloat(node, "alpha", 0.2), attrFloat(node, "beta", 0.5)
	case "Clip":
		act.min, act.max = math.Inf(-1), math.Inf(1)
		if p.prog.opset < 11 {
			act.min, act.max = attrFloat(node, "min", act.min), attrFloat(node, "max", act.max)
			break
		}
		for k, bound := range []*float64{&act.min, &act.max} {
			if !optional(node, k+1) {
				continue
			}
			v, err := p.lookup(node.Inputs[k+1])
			if err != nil {
				v, err = p.constantAhead(node.Inputs[k+1])
			}
			if err != nil || !v.static || v.isInt || len(v.t.data) != 1 {
				return act, false
			}
			*bound = float64(v.t.data[0])
		}
	default:
		return act, false
	}
	return act, true
}

// constantAhead plans now the Constant node that produces name, when the graph
// places it after the node being planned: PyTorch emits a Clip's bounds as
// Constant nodes between the Conv and the Clip, and fusing the Clip into the Conv
// (MobileNet's ReLU6) needs them when the Conv is planned.
func (p *planner[T]) constantAhead(name string) (*value[T], error) {
	i, node := p.prog.producer(name)
	if node == nil || node.OpType != "Constant" || p.skip[i] {
		return nil, fmt.Errorf("%q is not known yet", name)
	}
	if err := p.apply(i, node); err != nil {
		return nil, err
	}
	p.skip[i] = true
	return p.lookup(name)
}

// apply applies act to xs in place.
func applyActivation[T Float](act activation, xs []T) {
	switch act.kind {
	case "":
	case "Relu":
		for i, x := range xs {
			xs[i] = max(x, 0) // branch-free (see finish)
		}
	case "LeakyRelu":
		a := T(act.a)
		for i, x := range xs {
			if x < 0 {
				xs[i] = a * x
			}
		}
	case "Clip":
		lo, hi := T(act.min), T(act.max)
		for i, x := range xs {
			xs[i] = min(max(x, lo), hi)
		}
	case "Sigmoid":
		for i, x := range xs {
			xs[i] = T(1 / (1 + math.Exp(-float64(x))))
		}
	case "Tanh":
		for i, x := range xs {
			xs[i] = T(math.Tanh(float64(x)))
		}
	case "HardSigmoid":
		a, b := T(act.a), T(act.b)
		for i, x := range xs {
			xs[i] = min(max(a*x+b, 0), 1)
		}
	case "HardSwish":
		for i, x := range xs {
			xs[i] = x * min(max(x/6+0.5, 0), 1)
		}
	}
}

func (p *planner[T]) unary(node *onnx.Node) error {
	x, err := p.floatIn(node, 0)
	if err != nil {
		return err
	}
	out := p.output(node, 0, x.t.shape, x, 0)
	src := x.t.data
	dst := out.data
	switch node.OpType {
	case "Erf":
		p.add(func() {
			for i, v := range src {
				dst[i] = T(math.Erf(float64(v)))
			}
		})
		return nil
	case "Sqrt":
		p.add(func() {
			for i, v := range src {
				dst[i] = T(math.Sqrt(float64(v)))
			}
		})
		return nil
	}
	act, ok := p.activationOf(node)
	if !ok {
		return unsupported("the bounds of Clip must be constants")
	}
	p.add(func() {
		if &dst[0] != &src[0] {
			copy(dst, src)
		}
		applyActivation(act, dst)
	})
	return nil
}

// broadcastShape is numpy's broadcast of a and b.
func broadcastShape(a, b []int) ([]int, bool) {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := 0; i < n; i++ {
		da, db := 1, 1
		if j := i - (n - len(a)); j >= 0 {
			da = a[j]
		}
		if j := i - (n - len(b)); j >= 0 {
			db = b[j]
		}
		switch {
		case da == db || db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, false
		}
	}
	return out, true
}

// broadcastStrides returns the strides of shape read as out (0 on broadcast axes).
func broadcastStrides(shape, out []int) []int {
	s := make([]int, len(out))
	st := strides(shape)
	off := len(out) - len(shape)
	for i := range shape {
		if shape[i] != 1 {
			s[i+off] = st[i]
		}
	}
	return s
}

func binaryFunc[T Float](op string) func(x, y T) T {
	switch op {
	case "Add":
		return func(x, y T) T { return x + y }
	case "Sub":
		return func(x, y T) T { return x - y }
	case "Mul":
		return func(x, y T) T { return x * y }
	case "Div":
		return func(x, y T) T { return x / y }
	default:
		return func(x, y T) T { return T(math.Pow(float64(x), float64(y))) }
	}
}

func (p *planner[T]) binary(node *onnx.Node) error {
	a, err := p.in(node, 0)
	if err != nil {
		return err
	}
	b, err := p.in(node, 1)
	if err != nil {
		return err
	}
	shape, ok := broadcastShape(a.dims(), b.dims())
	if !ok {
		return unsupported("shapes %v and %v do not broadcast", a.dims(), b.dims())
	}
	if a.isInt || b.isInt {
		return p.intBinary(node, a, b, shape)
	}
	var out *tensor[T]
	switch {
	case p.inPlace(node, 0, a) && slices.Equal(a.t.shape, shape):
		out = p.output(node, 0, shape, a, 0)
	case p.inPlace(node, 1, b) && slices.Equal(b.t.shape, shape) && node.OpType != "Pow":
		out = p.output(node, 0, shape, b, 1)
	default:
		out = p.output(node, 0, shape, nil, 0)
	}
	p.add(broadcastKernel(node.OpType, a.t, b.t, out))
	return nil
}

// broadcastKernel returns a kernel computing out = a op b with broadcasting.
func broadcastKernel[T Float](op string, a, b, out *tensor[T]) func() {
	x, y, z := a.data, b.data, out.data
	switch {
	case len(x) == len(z) && len(y) == len(z):
		switch op {
		case "Add":
			return func() {
				for i := range z {
					z[i] = x[i] + y[i]
				}
			}
		case "Mul":
			return func() {
				for i := range z {
					z[i] = x[i] * y[i]
				}
			}
		}
	case len(x) == len(z) && len(y) == 1 && op != "Pow":
		f := binaryFunc[T](op)
		return func() {
			c := y[0]
			for i := range z {
				z[i] = f(x[i], c)
			}
		}
	}
	f := binaryFunc[T](op)
	shape := out.shape
	sa, sb := broadcastStrides(a.shape, shape), broadcastStrides(b.shape, shape)
	n := len(shape)
	if n == 0 {
		return func() { z[0] = f(x[0], y[0]) }
	}
	inner := shape[n-1]
	ia, ib := sa[n-1], sb[n-1]
	return func() {
		idx := make([]int, n)
		oa, ob := 0, 0
		for o := 0; o < len(z); o += inner {
			row := z[o : o+inner]
			switch {
			case ia == 1 && ib == 1:
				xr, yr := x[oa:oa+inner], y[ob:ob+inner]
				for i := range row {
					row[i] = f(xr[i], yr[i])
				}
			case ia == 1 && ib == 0:
				xr, c := x[oa:oa+inner], y[ob]
				for i := range row {
					row[i] = f(xr[i], c)
				}
			case ia == 0 && ib == 1:
				c, yr := x[oa], y[ob:ob+inner]
				for i := range row {
					row[i] = f(c, yr[i])
				}
			default:
				for i := range row {
					row[i] = f(x[oa+i*ia], y[ob+i*ib])
				}
			}
			// Advance the odometer over every axis but the last.
			for d := n - 2; d >= 0; d-- {
				idx[d]++
				oa += sa[d]
				ob += sb[d]
				if idx[d] < shape[d] {
					break
				}
				oa -= sa[d] * shape[d]
				ob -= sb[d] * shape[d]
				idx[d] = 0
			}
		}
	}
}

// intBinary folds integer arithmetic (shape computations).
func (p *planner[T]) intBinary(node *onnx.Node, a, b *value[T], shape []int) error {
	if !a.static || !b.static {
		return unsupported("integer arithmetic on run-time values is not supported")
	}
	ai, err := p.intsIn(node, 0)
	if err != nil {
		return err
	}
	bi, err := p.intsIn(node, 1)
	if err != nil {
		return err
	}
	out := make([]int64, size(shape))
	sa, sb := broadcastStrides(a.dims(), shape), broadcastStrides(b.dims(), shape)
	st := strides(shape)
	for o := range out {
		ia, ib := 0, 0
		for d := range shape {
			k := o / st[d] % shape[d]
			ia += k * sa[d]
			ib += k * sb[d]
		}
		x, y := ai[ia], bi[ib]
		switch node.OpType {
		case "Add":
			out[o] = x + y
		case "Sub":
			out[o] = x - y
		case "Mul":
			out[o] = x * y
		case "Div":
			if y == 0 {
				return unsupported("integer division by zero")
			}
			out[o] = x / y
		default:
			return unsupported("integer %s is not supported", node.OpType)
		}
	}
	p.setInts(node, 0, out, shape)
	return nil
}

// batchNorm plans inference-mode BatchNormalization as a per-channel affine map.
func (p *planner[T]) batchNorm(node *onnx.Node) error {
	x, err := p.floatIn(node, 0)
	if err != nil {
		return err
	}
	scale, shift, err := p.batchNormAffine(node)
	if err != nil {
		return err
	}
	if len(x.t.shape) < 2 || x.t.shape[1] != len(scale) {
		return unsupported("input shape %v does not have %d channels on axis 1", x.t.shape, len(scale))
	}
	out := p.output(node, 0, x.t.shape, x, 0)
	channels := len(scale)
	inner := size(x.t.shape[2:])
	src, dst := x.t.data, out.data
	p.add(func() {
		for o := 0; o < len(dst); o += channels * inner {
			for c := 0; c < channels; c++ {
				s, b := scale[c], shift[c]
				base := o + c*inner
				xs, ys := src[base:base+inner], dst[base:base+inner]
				for i := range ys {
					ys[i] = xs[i]*s + b
				}
			}
		}
	})
	return nil
}

// batchNormAffine returns, per channel, gamma/sqrt(var+eps) and beta-mean*that.
func (p *planner[T]) batchNormAffine(node *onnx.Node) (scale, shift []T, err error) {
	if len(node.Outputs) > 1 && node.Outputs[1] != "" || attrInt(node, "training_mode", 0) != 0 {
		return nil, nil, unsupported("training-mode BatchNormalization is not supported")
	}
	var params [4][]T
	for k := range params {
		v, err := p.floatIn(node, k+1)
		if err != nil {
			return nil, nil, err
		}
		if !v.static {
			return nil, nil, unsupported("input %d must be a constant", k+1)
		}
		params[k] = v.t.data
	}
	channels := len(params[0])
	for _, v := range params {
		if len(v) != channels {
			return nil, nil, unsupported("scale, bias, mean and variance differ in length")
		}
	}
	eps := attrFloat(node, "epsilon", 1e-5)
	scale, shift = make([]T, channels), make([]T, channels)
	for c := range scale {
		s := float64(params[0][c]) / math.Sqrt(float64(params[3][c])+eps)
		scale[c] = T(s)
		shift[c] = T(float64(params[1][c]) - float64(params[2][c])*s)
	}
	return scale, shift, nil
}

func (p *planner[T]) softmax(node *onnx.Node) error {
	x, err := p.floatIn(node, 0)
	if err != nil {
		return err
	}
	shape := x.t.shape
	var outer, n, inner int
	if p.prog.opset < 13 {
		ax, err := axis(attrInt(node, "axis", 1), len(shape))
		if err != nil {
			return err
		}
		outer, n, inner = size(shape[:ax]), size(shape[ax:]), 1
	} else {
		ax, err := axis(attrInt(node, "axis", -1), len(shape))
		if err != nil {
			return err
		}
		outer, n, inner = size(shape[:ax]), shape[ax], size(shape[ax+1:])
	}
	out := p.output(node, 0, shape, x, 0)
	src, dst := x.t.data, out.data
	logSoftmax := node.OpType == "LogSoftmax"
	p.add(func() {
		for o := 0; o < outer; o++ {
			for in := 0; in < inner; in++ {
				base := o*n*inner + in
				m := math.Inf(-1)
				for k := 0; k < n; k++ {
					m = max(m, float64(src[base+k*inner]))
				}
				sum := 0.0
				for k := 0; k < n; k++ {
					sum += math.Exp(float64(src[base+k*inner]) - m)
				}
				for k := 0; k < n; k++ {
					v := float64(src[base+k*inner]) - m
					if logSoftmax {
						dst[base+k*inner] = T(v - math.Log(sum))
					} else {
						dst[base+k*inner] = T(math.Exp(v) / sum)
					}
				}
			}
		}
	})
	return nil
}
