package infer

import (
	"math"
	"slices"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

func (p *planner[T]) identity(node *onnx.Node) error {
	x, err := p.in(node, 0)
	if err != nil {
		return err
	}
	if x.isInt {
		p.setInts(node, 0, x.ints, x.shape)
		return nil
	}
	p.view(node, 0, x, 0, x.t.shape)
	return nil
}

func (p *planner[T]) constant(node *onnx.Node) error {
	for _, a := range node.Attributes {
		switch a.Name {
		case "value":
			if a.T == nil {
				break
			}
			switch a.T.DataType {
			case onnx.DataTypeFloat, onnx.DataTypeInt64, onnx.DataTypeInt32:
				p.values[node.Outputs[0]] = constantValue[T](a.T)
				return nil
			}
			return unsupported("constant of type %s is not supported", a.T.DataType)
		case "value_float":
			p.values[node.Outputs[0]] = &value[T]{t: &tensor[T]{shape: []int{}, data: []T{T(a.F)}}, static: true, shared: true}
			return nil
		case "value_floats":
			t := &tensor[T]{shape: []int{len(a.Floats)}, data: make([]T, len(a.Floats))}
			for i, f := range a.Floats {
				t.data[i] = T(f)
			}
			p.values[node.Outputs[0]] = &value[T]{t: t, static: true, shared: true}
			return nil
		case "value_int":
			p.setInts(node, 0, []int64{a.I}, []int{})
			return nil
		case "value_ints":
			p.setInts(node, 0, slices.Clone(a.Ints), []int{len(a.Ints)})
			return nil
		}
	}
	return unsupported("Constant without a supported value attribute")
}

func (p *planner[T]) constantOfShape(node *onnx.Node) error {
	dims, err := p.intsIn(node, 0)
	if err != nil {
		return err
	}
	shape := toInts(dims)
	fill, isInt := 0.0, false
	if a := node.Attr("value"); a != nil && a.T != nil {
		switch {
		case len(a.T.Float) == 1:
			fill = float64(a.T.Float[0])
		case len(a.T.Int64) == 1:
			fill, isInt = float64(a.T.Int64[0]), true
		default:
			return unsupported("value of type %s is not supported", a.T.DataType)
		}
	}
	if isInt {
		ints := make([]int64, size(shape))
		for i := range ints {
			ints[i] = int64(fill)
		}
		p.setInts(node, 0, ints, shape)
		return nil
	}
	t := newTensor[T](shape)
	for i := range t.data {
		t.data[i] = T(fill)
	}
	p.values[node.Outputs[0]] = &value[T]{t: t, static: true, shared: true}
	return nil
}

// cast converts between the float tensors this package computes in and integer
// constants; float-to-float casts are views.
func (p *planner[T]) cast(node *onnx.Node) error {
	x, err := p.in(node, 0)
	if err != nil {
		return err
	}
	to := onnx.DataType(attrInt(node, "to", 0))
	switch to {
	case onnx.DataTypeFloat, onnx.DataTypeDouble, onnx.DataTypeFloat16:
		if !x.isInt {
			p.view(node, 0, x, 0, x.t.shape)
			return nil
		}
		t := &tensor[T]{shape: slices.Clone(x.shape), data: make([]T, len(x.ints))}
		for i, v := range x.ints {
			t.data[i] = T(v)
		}
		p.values[node.Outputs[0]] = &value[T]{t: t, static: true, shared: true}
		return nil
	case onnx.DataTypeInt64, onnx.DataTypeInt32:
		ints, err := p.intsIn(node, 0)
		if err != nil {
			return err
		}
		p.setInts(node, 0, ints, slices.Clone(x.dims()))
		return nil
	}
	return unsupported("Cast to %s is not supported", to)
}

func (p *planner[T]) shapeOf(node *onnx.Node) error {
	x, err := p.in(node, 0)
	if err != nil {
		return err
	}
	dims := x.dims()
	start, end := attrInt(node, "start", 0), attrInt(node, "end", int64(len(dims)))
	lo, hi := clampAxis(start, len(dims)), clampAxis(end, len(dims))
	out := []int64{}
	for _, d := range dims[lo:max(lo, hi)] {
		out = append(out, int64(d))
	}
	p.setInts(node, 0, out, []int{len(out)})
	return nil
}

// clampAxis resolves a possibly negative bound and clamps it to [0, rank].
func clampAxis(a int64, rank int) int {
	if a < 0 {
		a += int64(rank)
	}
	return int(min(max(a, 0), int64(rank)))
}

// reshaped returns x's data under a new shape: a view of a float tensor, or the
// same integers.
func (p *planner[T]) reshaped(node *onnx.Node, x *value[T], shape []int) error {
	if size(shape) != size(x.dims()) {
		return unsupported("cannot reshape %v (%d values) to %v", x.dims(), size(x.dims()), shape)
	}
	if x.isInt {
		p.setInts(node, 0, x.ints, shape)
		return nil
	}
	p.view(node, 0, x, 0, shape)
	return nil
}

func (p *planner[T]) reshape(node *onnx.Node) error {
	x, err := p.in(node, 0)
	if err != nil {
		return err
	}
	var target []int64
	if p.prog.opset < 5 {
		target, _ = attrInts(node, "shape")
	} else if target, err = p.intsIn(node, 1); err != nil {
		return err
	}
	in := x.dims()
	allowZero := attrInt(node, "allowzero", 0) != 0
	shape := make([]int, len(target))
	infer := -1
	known := 1
	for i, d := range target {
		switch {
		case d == 0 && !allowZero:
			if i >= len(in) {
				return unsupported("shape %v copies axis %d of a rank-%d input", target, i, len(in))
			}
			shape[i] = in[i]
		case d == -1:
			if infer >= 0 {
				return unsupported("shape %v has two -1 entries", target)
			}
			infer = i
			continue
		case d < 0:
			return unsupported("shape %v has a negative entry", target)
		default:
			shape[i] = int(d)
		}
		known *= shape[i]
	}
	if infer >= 0 {
		if known == 0 || size(in)%known != 0 {
			return unsupported("cannot reshape %v to %v", in, target)
		}
		shape[infer] = size(in) / known
	}
	return p.reshaped(node, x, shape)
}

func (p *planner[T]) flatten(node *onnx.Node) error {
	x, err := p.in(node, 0)
	if err != nil {
		return err
	}
	dims := x.dims()
	ax := clampAxis(attrInt(node, "axis", 1), len(dims))
	return p.reshaped(node, x, []int{size(dims[:ax]), size(dims[ax:])})
}

// axesOf reads an axes list from the attribute (older opsets) or input 1.
func (p *planner[T]) axesOf(node *onnx.Node, inputSince int64) ([]int64, bool, error) {
	if p.prog.opset < inputSince {
		a, ok := attrInts(node, "axes")
		return a, ok, nil
	}
	if !optional(node, 1) {
		return nil, false, nil
	}
	a, err := p.intsIn(node, 1)
	return a, true, err
}

func (p *planner[T]) squeeze(node *onnx.Node) error {
	x, err := p.in(node, 0)
	if err != nil {
		return err
	}
	axes, given, err := p.axesOf(node, 13)
	if err != nil {
		return err
	}
	dims := x.dims()
	if node.OpType == "Unsqueeze" {
		rank := len(dims) + len(axes)
		mark := make([]bool, rank)
		for _, a := range axes {
			ax, err := axis(a, rank)
			if err != nil {
				return err
			}
			mark[ax] = true
		}
		shape := make([]int, 0, rank)
		k := 0
		for i := 0; i < rank; i++ {
			if mark[i] {
				shape = append(shape, 1)
			} else {
				shape = append(shape, dims[k])
				k++
			}
		}
		return p.reshaped(node, x, shape)
	}
	drop := make([]bool, len(dims))
	for _, a := range axes {
		ax, err := axis(a, len(dims))
		if err != nil {
			return err
		}
		if dims[ax] != 1 {
			return unsupported("cannot squeeze axis %d of %v", ax, dims)
		}
		drop[ax] = true
	}
	var shape []int
	for i, d := range dims {
		if !(drop[i] || !given && d == 1) {
			shape = append(shape, d)
		}
	}
	return p.reshaped(node, x, shape)
}

// remap plans a data movement given by a source index for every output element
// (-1 for padding): on a float tensor as a kernel, on integers at once.
func (p *planner[T]) remap(node *onnx.Node, x *value[T], shape []int, src []int32, fill T) {
	if x.isInt {
		out := make([]int64, len(src))
		for i, s := range src {
			if s >= 0 {
				out[i] = x.ints[s]
			} else {
				out[i] = int64(fill)
			}
		}
		p.setInts(node, 0, out, shape)
		return
	}
	out := p.output(node, 0, shape, nil, 0)
	in, dst := x.t.data, out.data
	p.add(func() {
		for i, s := range src {
			if s >= 0 {
				dst[i] = in[s]
			} else {
				dst[i] = fill
			}
		}
	})
}

// indexMap returns, for each element of an output of the given shape in order,
// f of its multi-index.
func indexMap(shape []int, f func(idx []int) int) []int32 {
	out := make([]int32, size(shape))
	idx := make([]int, len(shape))
	for o := range out {
		out[o] = int32(f(idx))
		for d := len(shape) - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < shape[d] {
				break
			}
			idx[d] = 0
		}
	}
	return out
}

func (p *planner[T]) transpose(node *onnx.Node) error {
	x, err := p.in(node, 0)
	if err != nil {
		return err
	}
	dims := x.dims()
	perm, ok := attrInts(node, "perm")
	if !ok {
		for i := len(dims) - 1; i >= 0; i-- {
			perm = append(perm, int64(i))
		}
	}
	if len(perm) != len(dims) {
		return unsupported("perm %v for a rank-%d input", perm, len(dims))
	}
	shape := make([]int, len(dims))
	for i, a := range perm {
		if a < 0 || int(a) >= len(dims) {
			return unsupported("perm %v out of range", perm)
		}
		shape[i] = dims[a]
	}
	st := strides(dims)
	p.remap(node, x, shape, indexMap(shape, func(idx []int) int {
		s := 0
		for i, a := range perm {
			s += idx[i] * st[a]
		}
		return s
	}), 0)
	return nil
}

func (p *planner[T]) slice(node *onnx.Node) error {
	x, err := p.in(node, 0)
	if err != nil {
		return err
	}
	dims := x.dims()
	var starts, ends, axes, steps []int64
	if p.prog.opset < 10 {
		starts, _ = attrInts(node, "starts")
		ends, _ = attrInts(node, "ends")
		axes, _ = attrInts(node, "axes")
	} else {
		if starts, err = p.intsIn(node, 1); err != nil {
			return err
		}
		if ends, err = p.intsIn(node, 2); err != nil {
			return err
		}
		if optional(node, 3) {
			if axes, err = p.intsIn(node, 3); err != nil {
				return err
			}
		}
		if optional(node, 4) {
			if steps, err = p.intsIn(node, 4); err != nil {
				return err
			}
		}
	}
	if axes == nil {
		for i := range starts {
			axes = append(axes, int64(i))
		}
	}
	if len(ends) != len(starts) || len(axes) != len(starts) || steps != nil && len(steps) != len(starts) {
		return unsupported("starts, ends, axes and steps differ in length")
	}
	begin, step := make([]int, len(dims)), make([]int, len(dims))
	shape := slices.Clone(dims)
	for i := range step {
		step[i] = 1
	}
	for i, a := range axes {
		ax, err := axis(a, len(dims))
		if err != nil {
			return err
		}
		d := int64(dims[ax])
		s := int64(1)
		if steps != nil {
			s = steps[i]
		}
		if s == 0 {
			return unsupported("step 0")
		}
		lo, hi := starts[i], ends[i]
		if lo < 0 {
			lo += d
		}
		if hi < 0 {
			hi += d
		}
		var n int64
		if s > 0 {
			lo, hi = min(max(lo, 0), d), min(max(hi, 0), d)
			n = max(0, (hi-lo+s-1)/s)
		} else {
			lo, hi = min(max(lo, -1), d-1), min(max(hi, -1), d-1)
			n = max(0, (lo-hi-s-1)/(-s))
		}
		begin[ax], step[ax], shape[ax] = int(lo), int(s), int(n)
	}
	st := strides(dims)
	p.remap(node, x, shape, indexMap(shape, func(idx []int) int {
		s := 0
		for d := range idx {
			s += (begin[d] + idx[d]*step[d]) * st[d]
		}
		return s
	}), 0)
	return nil
}

func (p *planner[T]) gather(node *onnx.Node) error {
	x, err := p.in(node, 0)
	if err != nil {
		return err
	}
	iv, err := p.in(node, 1)
	if err != nil {
		return err
	}
	indices, err := p.intsIn(node, 1)
	if err != nil {
		return err
	}
	indices = slices.Clone(indices)
	dims := x.dims()
	ax, err := axis(attrInt(node, "axis", 0), len(dims))
	if err != nil {
		return err
	}
	for i, k := range indices {
		if k < 0 {
			k += int64(dims[ax])
		}
		if k < 0 || k >= int64(dims[ax]) {
			return unsupported("index %d out of range for axis %d of %v", indices[i], ax, dims)
		}
		indices[i] = k
	}
	ishape := iv.dims()
	shape := append(append(slices.Clone(dims[:ax]), ishape...), dims[ax+1:]...)
	st := strides(dims)
	ist := strides(ishape)
	p.remap(node, x, shape, indexMap(shape, func(idx []int) int {
		s := 0
		for d := 0; d < ax; d++ {
			s += idx[d] * st[d]
		}
		k := 0
		for d := range ishape {
			k += idx[ax+d] * ist[d]
		}
		s += int(indices[k]) * st[ax]
		for d := ax + 1; d < len(dims); d++ {
			s += idx[d-1+len(ishape)] * st[d]
		}
		return s
	}), 0)
	return nil
}

func (p *planner[T]) pad(node *onnx.Node) error {
	x, err := p.floatIn(node, 0)
	if err != nil {
		return err
	}
	if mode := attrString(node, "mode", "constant"); mode != "constant" {
		return unsupported("mode %q: only constant padding is supported", mode)
	}
	dims := x.t.shape
	var pads []int64
	fill := T(attrFloat(node, "value", 0))
	if p.prog.opset < 11 {
		pads, _ = attrInts(node, "pads")
	} else {
		if pads, err = p.intsIn(node, 1); err != nil {
			return err
		}
		if optional(node, 2) {
			c, err := p.floatIn(node, 2)
			if err != nil {
				return err
			}
			if !c.static || len(c.t.data) != 1 {
				return unsupported("constant_value must be a constant scalar")
			}
			fill = c.t.data[0]
		}
	}
	rank := len(dims)
	begin, end := make([]int, rank), make([]int, rank)
	if optional(node, 3) {
		axes, err := p.intsIn(node, 3)
		if err != nil {
			return err
		}
		if len(pads) != 2*len(axes) {
			return unsupported("pads %v for axes %v", pads, axes)
		}
		for i, a := range axes {
			ax, err := axis(a, rank)
			if err != nil {
				return err
			}
			begin[ax], end[ax] = int(pads[i]), int(pads[i+len(axes)])
		}
	} else {
		if len(pads) != 2*rank {
			return unsupported("pads %v for a rank-%d input", pads, rank)
		}
		for i := 0; i < rank; i++ {
			begin[i], end[i] = int(pads[i]), int(pads[i+rank])
		}
	}
	shape := make([]int, rank)
	for i := range shape {
		if shape[i] = dims[i] + begin[i] + end[i]; shape[i] < 0 {
			return unsupported("pads %v leave a negative size", pads)
		}
	}
	st := strides(dims)
	p.remap(node, x, shape, indexMap(shape, func(idx []int) int {
		s := 0
		for d := range idx {
			i := idx[d] - begin[d]
			if i < 0 || i >= dims[d] {
				return -1
			}
			s += i * st[d]
		}
		return s
	}), fill)
	return nil
}

// blocks splits a shape at axis into the count of outer blocks and the size of
// one slice of the axis.
func blocks(shape []int, ax int) (outer, inner int) {
	return size(shape[:ax]), size(shape[ax+1:])
}

func (p *planner[T]) concat(node *onnx.Node) error {
	var parts []*value[T]
	for k := range node.Inputs {
		v, err := p.in(node, k)
		if err != nil {
			return err
		}
		parts = append(parts, v)
	}
	if len(parts) == 0 {
		return unsupported("Concat without inputs")
	}
	first := parts[0].dims()
	ax, err := axis(attrInt(node, "axis", 0), len(first))
	if err != nil {
		return err
	}
	shape := slices.Clone(first)
	shape[ax] = 0
	allInt := true
	for _, v := range parts {
		d := v.dims()
		if len(d) != len(first) {
			return unsupported("inputs of ranks %d and %d", len(first), len(d))
		}
		for i := range d {
			if i != ax && d[i] != first[i] {
				return unsupported("input shapes %v and %v differ off axis %d", first, d, ax)
			}
		}
		shape[ax] += d[ax]
		allInt = allInt && v.isInt
	}
	outer, inner := blocks(shape, ax)
	if allInt {
		out := make([]int64, 0, size(shape))
		for o := 0; o < outer; o++ {
			for _, v := range parts {
				n := v.dims()[ax] * inner
				out = append(out, v.ints[o*n:(o+1)*n]...)
			}
		}
		p.setInts(node, 0, out, shape)
		return nil
	}
	for _, v := range parts {
		if v.isInt {
			return unsupported("Concat of integer and float tensors")
		}
	}
	out := p.output(node, 0, shape, nil, 0)
	dst := out.data
	p.add(func() {
		at := 0
		for o := 0; o < outer; o++ {
			for _, v := range parts {
				n := v.t.shape[ax] * inner
				at += copy(dst[at:], v.t.data[o*n:(o+1)*n])
			}
		}
	})
	return nil
}

func (p *planner[T]) split(node *onnx.Node) error {
	x, err := p.floatIn(node, 0)
	if err != nil {
		return err
	}
	dims := x.t.shape
	ax, err := axis(attrInt(node, "axis", 0), len(dims))
	if err != nil {
		return err
	}
	var parts []int64
	if p.prog.opset < 13 {
		parts, _ = attrInts(node, "split")
	} else if optional(node, 1) {
		if parts, err = p.intsIn(node, 1); err != nil {
			return err
		}
	}
	outs := len(node.Outputs)
	if parts == nil {
		// Equal parts, the last smaller when the axis does not divide (opset 18).
		chunk := (dims[ax] + outs - 1) / outs
		for i := 0; i < outs; i++ {
			parts = append(parts, int64(min(chunk, dims[ax]-i*chunk)))
		}
	}
	total := int64(0)
	for _, s := range parts {
		total += s
	}
	if len(parts) != outs || total != int64(dims[ax]) {
		return unsupported("split %v of axis %d (%d) into %d outputs", parts, ax, dims[ax], outs)
	}
	outer, inner := blocks(dims, ax)
	offset := 0
	for k, s := range parts {
		shape := slices.Clone(dims)
		shape[ax] = int(s)
		out := newTensor[T](shape)
		p.values[node.Outputs[k]] = &value[T]{t: out}
		src, dst, off, n := x.t.data, out.data, offset, int(s)*inner
		full := dims[ax] * inner
		p.add(func() {
			for o := 0; o < outer; o++ {
				copy(dst[o*n:(o+1)*n], src[o*full+off:o*full+off+n])
			}
		})
		offset += n
	}
	return nil
}

func (p *planner[T]) reduceMean(node *onnx.Node) error {
	x, err := p.floatIn(node, 0)
	if err != nil {
		return err
	}
	axes, _, err := p.axesOf(node, 18)
	if err != nil {
		return err
	}
	dims := x.t.shape
	keep := attrInt(node, "keepdims", 1) != 0
	reduce := make([]bool, len(dims))
	if len(axes) == 0 {
		if attrInt(node, "noop_with_empty_axes", 0) != 0 {
			return p.identity(node)
		}
		for i := range reduce {
			reduce[i] = true
		}
	}
	for _, a := range axes {
		ax, err := axis(a, len(dims))
		if err != nil {
			return err
		}
		reduce[ax] = true
	}
	kept := slices.Clone(dims)
	var shape []int
	count := 1
	for i, d := range dims {
		if reduce[i] {
			kept[i] = 1
			count *= d
			if keep {
				shape = append(shape, 1)
			}
		} else {
			shape = append(shape, d)
		}
	}
	out := p.output(node, 0, shape, nil, 0)
	// Each input element adds into the output element its kept axes name.
	target := make([]int32, size(dims))
	kst := strides(kept)
	idx := make([]int, len(dims))
	for i := range target {
		t := 0
		for d := range dims {
			if !reduce[d] {
				t += idx[d] * kst[d]
			}
		}
		target[i] = int32(t)
		for d := len(dims) - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < dims[d] {
				break
			}
			idx[d] = 0
		}
	}
	src, dst := x.t.data, out.data
	acc := make([]float64, len(dst))
	p.add(func() {
		clear(acc)
		for i, t := range target {
			acc[t] += float64(src[i])
		}
		for i := range dst {
			dst[i] = T(acc[i] / float64(count))
		}
	})
	return nil
}

func toInts(v []int64) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(max(0, min(x, math.MaxInt32)))
	}
	return out
}
