package onnxtest

import (
	"fmt"
	"math"
	"slices"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// Tensor is a dense float64 array in row-major order.
type Tensor struct {
	Shape []int
	Data  []float64
}

func newTensor(shape ...int) *Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return &Tensor{Shape: shape, Data: make([]float64, n)}
}

// Trace records the discrete choices of one forward pass: which Relu inputs were
// positive and which element each MaxPool output took. Two inputs with equal traces
// lie in the same linear piece of a network built from Conv, Gemm, MatMul, Add,
// BatchNormalization, Relu and MaxPool, so a finite difference between them sees no
// kink.
type Trace struct {
	Relu    [][]bool
	MaxPool [][]int
}

// Equal reports whether two traces made the same choices everywhere.
func (t *Trace) Equal(o *Trace) bool {
	if len(t.Relu) != len(o.Relu) || len(t.MaxPool) != len(o.MaxPool) {
		return false
	}
	for i := range t.Relu {
		if !slices.Equal(t.Relu[i], o.Relu[i]) {
			return false
		}
	}
	for i := range t.MaxPool {
		if !slices.Equal(t.MaxPool[i], o.MaxPool[i]) {
			return false
		}
	}
	return true
}

// Run evaluates m on one example in float64, straight from the ONNX operator
// definitions, with no code shared with pkg/fragile/nn. input holds the example's
// values (the model's input shape with the batch dimension set to 1). override
// replaces initializer values by name (for finite differences on weights). It
// returns every value the graph computes, by name, and the trace of the pass.
func Run(m *onnx.Model, input []float64, override map[string][]float64) (map[string]*Tensor, *Trace, error) {
	vals := map[string]*Tensor{}
	for _, t := range m.Graph.Initializers {
		shape := make([]int, len(t.Dims))
		for i, d := range t.Dims {
			shape[i] = int(d)
		}
		v := &Tensor{Shape: shape}
		switch {
		case override[t.Name] != nil:
			v.Data = slices.Clone(override[t.Name])
		case t.DataType == onnx.DataTypeFloat:
			for _, f := range t.Float {
				v.Data = append(v.Data, float64(f))
			}
		case t.DataType == onnx.DataTypeInt64:
			for _, x := range t.Int64 {
				v.Data = append(v.Data, float64(x))
			}
		default:
			return nil, nil, fmt.Errorf("initializer %s: type %s", t.Name, t.DataType)
		}
		vals[t.Name] = v
	}
	var in *onnx.ValueInfo
	for i := range m.Graph.Inputs {
		if _, ok := vals[m.Graph.Inputs[i].Name]; !ok {
			in = &m.Graph.Inputs[i]
			break
		}
	}
	if in == nil {
		return nil, nil, fmt.Errorf("no graph input")
	}
	x := &Tensor{Shape: []int{1}, Data: slices.Clone(input)}
	for _, d := range in.Dims[1:] {
		x.Shape = append(x.Shape, int(d.Value))
	}
	if n := size(x.Shape); n != len(input) {
		return nil, nil, fmt.Errorf("input %s needs %d values, %d given", in.Name, n, len(input))
	}
	vals[in.Name] = x
	tr := &Trace{}
	for i := range m.Graph.Nodes {
		node := &m.Graph.Nodes[i]
		var args []*Tensor
		for _, name := range node.Inputs {
			if name == "" {
				args = append(args, nil)
				continue
			}
			v, ok := vals[name]
			if !ok {
				return nil, nil, fmt.Errorf("node %s: input %s not computed", node.Name, name)
			}
			args = append(args, v)
		}
		out, err := apply(node, args, m.Opsets[""], tr)
		if err != nil {
			return nil, nil, fmt.Errorf("node %s (%s): %w", node.Name, node.OpType, err)
		}
		vals[node.Outputs[0]] = out
	}
	return vals, tr, nil
}

func size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func ints(node *onnx.Node, name string, def ...int64) []int {
	v := def
	if a := node.Attr(name); a != nil {
		v = a.Ints
	}
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}

func intAttr(node *onnx.Node, name string, def int64) int {
	if a := node.Attr(name); a != nil {
		return int(a.I)
	}
	return int(def)
}

func floatAttr(node *onnx.Node, name string, def float32) float64 {
	if a := node.Attr(name); a != nil {
		return float64(a.F)
	}
	return float64(def)
}

func apply(node *onnx.Node, args []*Tensor, opset int64, tr *Trace) (*Tensor, error) {
	switch node.OpType {
	case "Identity", "Dropout":
		return args[0], nil
	case "Relu":
		x := args[0]
		y := newTensor(slices.Clone(x.Shape)...)
		pos := make([]bool, len(x.Data))
		for i, v := range x.Data {
			pos[i] = v > 0
			y.Data[i] = math.Max(v, 0)
		}
		tr.Relu = append(tr.Relu, pos)
		return y, nil
	case "Add", "Sub", "Mul", "Div":
		return broadcast(node.OpType, args[0], args[1])
	case "MatMul":
		return matmul(args[0], args[1], false, false)
	case "Gemm":
		y, err := matmul(args[0], args[1], intAttr(node, "transA", 0) != 0, intAttr(node, "transB", 0) != 0)
		if err != nil {
			return nil, err
		}
		alpha, beta := floatAttr(node, "alpha", 1), floatAttr(node, "beta", 1)
		for i := range y.Data {
			y.Data[i] *= alpha
		}
		if len(args) > 2 && args[2] != nil {
			c := &Tensor{Shape: args[2].Shape, Data: make([]float64, len(args[2].Data))}
			for i, v := range args[2].Data {
				c.Data[i] = beta * v
			}
			return broadcast("Add", y, c)
		}
		return y, nil
	case "Flatten":
		x := args[0]
		axis := intAttr(node, "axis", 1)
		if axis < 0 {
			axis += len(x.Shape)
		}
		outer := size(x.Shape[:axis])
		return &Tensor{Shape: []int{outer, len(x.Data) / outer}, Data: x.Data}, nil
	case "Reshape":
		x, target := args[0], args[1]
		shape := make([]int, len(target.Data))
		infer, known := -1, 1
		for i, d := range target.Data {
			switch {
			case d == 0:
				shape[i] = x.Shape[i]
			case d == -1:
				infer = i
				continue
			default:
				shape[i] = int(d)
			}
			known *= shape[i]
		}
		if infer >= 0 {
			shape[infer] = len(x.Data) / known
		}
		if size(shape) != len(x.Data) {
			return nil, fmt.Errorf("cannot reshape %v to %v", x.Shape, target.Data)
		}
		return &Tensor{Shape: shape, Data: x.Data}, nil
	case "BatchNormalization":
		x, scale, bias, mean, variance := args[0], args[1], args[2], args[3], args[4]
		eps := floatAttr(node, "epsilon", 1e-5)
		y := newTensor(slices.Clone(x.Shape)...)
		channels := x.Shape[1]
		inner := size(x.Shape[2:])
		for i := range x.Data {
			c := (i / inner) % channels
			y.Data[i] = scale.Data[c]*(x.Data[i]-mean.Data[c])/math.Sqrt(variance.Data[c]+eps) + bias.Data[c]
		}
		return y, nil
	case "Softmax":
		x := args[0]
		axis := intAttr(node, "axis", map[bool]int64{true: -1, false: 1}[opset >= 13])
		if axis < 0 {
			axis += len(x.Shape)
		}
		if len(x.Shape) != 2 || axis != 1 {
			return nil, fmt.Errorf("softmax of %v over axis %d", x.Shape, axis)
		}
		y := newTensor(slices.Clone(x.Shape)...)
		cols := x.Shape[1]
		for r := 0; r < x.Shape[0]; r++ {
			row := x.Data[r*cols : (r+1)*cols]
			top := slices.Max(row)
			sum := 0.0
			for _, v := range row {
				sum += math.Exp(v - top)
			}
			for j, v := range row {
				y.Data[r*cols+j] = math.Exp(v-top) / sum
			}
		}
		return y, nil
	case "Conv":
		var bias *Tensor
		if len(args) > 2 {
			bias = args[2]
		}
		return conv(node, args[0], args[1], bias)
	case "MaxPool":
		return maxPool(node, args[0], tr)
	}
	return nil, fmt.Errorf("op %s is not in the reference", node.OpType)
}

// broadcast applies a binary op with numpy (multidirectional) broadcasting.
func broadcast(op string, a, b *Tensor) (*Tensor, error) {
	rank := max(len(a.Shape), len(b.Shape))
	pad := func(s []int) []int { return append(slices.Repeat([]int{1}, rank-len(s)), s...) }
	as, bs := pad(a.Shape), pad(b.Shape)
	out := make([]int, rank)
	for i := range out {
		switch {
		case as[i] == bs[i] || bs[i] == 1:
			out[i] = as[i]
		case as[i] == 1:
			out[i] = bs[i]
		default:
			return nil, fmt.Errorf("%v and %v do not broadcast", a.Shape, b.Shape)
		}
	}
	y := newTensor(out...)
	idx := make([]int, rank)
	for k := range y.Data {
		rem := k
		for i := rank - 1; i >= 0; i-- {
			idx[i] = rem % out[i]
			rem /= out[i]
		}
		ai, bi := 0, 0
		for i := 0; i < rank; i++ {
			ai = ai*as[i] + idx[i]%as[i]
			bi = bi*bs[i] + idx[i]%bs[i]
		}
		x, z := a.Data[ai], b.Data[bi]
		switch op {
		case "Add":
			y.Data[k] = x + z
		case "Sub":
			y.Data[k] = x - z
		case "Mul":
			y.Data[k] = x * z
		case "Div":
			y.Data[k] = x / z
		}
	}
	return y, nil
}

func matmul(a, b *Tensor, transA, transB bool) (*Tensor, error) {
	if len(a.Shape) != 2 || len(b.Shape) != 2 {
		return nil, fmt.Errorf("matmul of %v and %v", a.Shape, b.Shape)
	}
	at := func(i, k int) float64 { return a.Data[i*a.Shape[1]+k] }
	m, ka := a.Shape[0], a.Shape[1]
	if transA {
		at = func(i, k int) float64 { return a.Data[k*a.Shape[1]+i] }
		m, ka = ka, m
	}
	bt := func(k, j int) float64 { return b.Data[k*b.Shape[1]+j] }
	kb, n := b.Shape[0], b.Shape[1]
	if transB {
		bt = func(k, j int) float64 { return b.Data[j*b.Shape[1]+k] }
		kb, n = n, kb
	}
	if ka != kb {
		return nil, fmt.Errorf("matmul of %v and %v (transA %v, transB %v)", a.Shape, b.Shape, transA, transB)
	}
	y := newTensor(m, n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			s := 0.0
			for k := 0; k < ka; k++ {
				s += at(i, k) * bt(k, j)
			}
			y.Data[i*n+j] = s
		}
	}
	return y, nil
}

// window resolves one spatial axis of a Conv or MaxPool: the output size and the
// padding before the first element, from auto_pad or pads.
func window(node *onnx.Node, axis, in, kernel, stride, dilation int) (out, begin int, err error) {
	extent := (kernel-1)*dilation + 1
	autoPad := "NOTSET"
	if a := node.Attr("auto_pad"); a != nil {
		autoPad = string(a.S)
	}
	switch autoPad {
	case "SAME_UPPER", "SAME_LOWER":
		out = (in + stride - 1) / stride
		total := max(0, (out-1)*stride+extent-in)
		begin = total / 2
		if autoPad == "SAME_LOWER" {
			begin = total - total/2
		}
		return out, begin, nil
	case "VALID":
		return (in-extent)/stride + 1, 0, nil
	case "NOTSET", "":
		pads := ints(node, "pads", 0, 0, 0, 0)
		begin, end := pads[axis], pads[axis+2]
		return (in+begin+end-extent)/stride + 1, begin, nil
	}
	return 0, 0, fmt.Errorf("auto_pad %q", autoPad)
}

func conv(node *onnx.Node, x, w, bias *Tensor) (*Tensor, error) {
	if len(x.Shape) != 4 || len(w.Shape) != 4 {
		return nil, fmt.Errorf("conv of %v with %v", x.Shape, w.Shape)
	}
	group := intAttr(node, "group", 1)
	n, c, h, wd := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	m, cg, kh, kw := w.Shape[0], w.Shape[1], w.Shape[2], w.Shape[3]
	if cg*group != c || m%group != 0 {
		return nil, fmt.Errorf("conv of %v with %v in %d groups", x.Shape, w.Shape, group)
	}
	strides := ints(node, "strides", 1, 1)
	dil := ints(node, "dilations", 1, 1)
	oh, ph, err := window(node, 0, h, kh, strides[0], dil[0])
	if err != nil {
		return nil, err
	}
	ow, pw, err := window(node, 1, wd, kw, strides[1], dil[1])
	if err != nil {
		return nil, err
	}
	y := newTensor(n, m, oh, ow)
	for b := 0; b < n; b++ {
		for o := 0; o < m; o++ {
			g := o / (m / group)
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					s := 0.0
					if bias != nil {
						s = bias.Data[o]
					}
					for ci := 0; ci < cg; ci++ {
						for u := 0; u < kh; u++ {
							r := i*strides[0] - ph + u*dil[0]
							if r < 0 || r >= h {
								continue
							}
							for v := 0; v < kw; v++ {
								q := j*strides[1] - pw + v*dil[1]
								if q < 0 || q >= wd {
									continue
								}
								s += x.Data[((b*c+g*cg+ci)*h+r)*wd+q] * w.Data[((o*cg+ci)*kh+u)*kw+v]
							}
						}
					}
					y.Data[((b*m+o)*oh+i)*ow+j] = s
				}
			}
		}
	}
	return y, nil
}

func maxPool(node *onnx.Node, x *Tensor, tr *Trace) (*Tensor, error) {
	if len(x.Shape) != 4 {
		return nil, fmt.Errorf("maxpool of %v", x.Shape)
	}
	n, c, h, wd := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	k := ints(node, "kernel_shape")
	strides := ints(node, "strides", 1, 1)
	oh, ph, err := window(node, 0, h, k[0], strides[0], 1)
	if err != nil {
		return nil, err
	}
	ow, pw, err := window(node, 1, wd, k[1], strides[1], 1)
	if err != nil {
		return nil, err
	}
	y := newTensor(n, c, oh, ow)
	arg := make([]int, len(y.Data))
	for p := 0; p < n*c; p++ {
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				best, at := math.Inf(-1), -1
				for u := 0; u < k[0]; u++ {
					r := i*strides[0] - ph + u
					if r < 0 || r >= h {
						continue
					}
					for v := 0; v < k[1]; v++ {
						q := j*strides[1] - pw + v
						if q < 0 || q >= wd {
							continue
						}
						if idx := (p*h+r)*wd + q; x.Data[idx] > best {
							best, at = x.Data[idx], idx
						}
					}
				}
				o := (p*oh+i)*ow + j
				y.Data[o], arg[o] = best, at
			}
		}
	}
	tr.MaxPool = append(tr.MaxPool, arg)
	return y, nil
}
