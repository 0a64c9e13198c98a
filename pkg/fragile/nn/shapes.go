package nn

import (
	"fmt"
	"slices"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// The shape logic of the layout ops, on plain shapes, shared by the graph builders
// (ops_shape.go) and the folding of integer shape arithmetic (fold.go).

// reshapeTarget resolves a Reshape target against the input shape (0 copies a
// dimension unless allowzero, -1 infers one). batchDim is true when the data
// carries the batch and the target's first entry is the batch size the file was
// exported with (mnist-7 bakes in 1x256): it then becomes batch, so the model runs
// at any batch size.
func reshapeTarget(in []int, target []int64, batchDim bool, batch int, allowZero bool) ([]int, error) {
	size := 1
	for _, d := range in {
		size *= d
	}
	shape := make([]int, len(target))
	infer, known := -1, 1
	for i, d := range target {
		switch {
		case i == 0 && batchDim:
			shape[i] = batch
		case d == 0 && !allowZero:
			if i >= len(in) {
				return nil, fmt.Errorf("shape %v copies dimension %d of %v", target, i, in)
			}
			shape[i] = in[i]
		case d == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("shape %v has more than one -1", target)
			}
			infer = i
			continue
		case d < 0:
			return nil, fmt.Errorf("invalid shape %v", target)
		default:
			shape[i] = int(d)
		}
		known *= shape[i]
	}
	if infer >= 0 {
		if known == 0 || size%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v to %v", in, target)
		}
		shape[infer] = size / known
		known *= shape[infer]
	}
	if known != size {
		return nil, fmt.Errorf("cannot reshape %v (%d values) to %v", in, size, shape)
	}
	return shape, nil
}

// flattenShape is Flatten's 2-D shape: the axes before axis, and the rest.
func flattenShape(in []int, a int) ([]int, error) {
	if a < 0 {
		a += len(in)
	}
	if a < 0 || a > len(in) {
		return nil, fmt.Errorf("axis %d out of range for shape %v", a, in)
	}
	outer, inner := 1, 1
	for i, d := range in {
		if i < a {
			outer *= d
		} else {
			inner *= d
		}
	}
	return []int{outer, inner}, nil
}

// squeezeAxes reads Squeeze's and Unsqueeze's axes: the attribute (to opset 12) or
// the constant input 1 (from 13). ok is false when neither is given.
func squeezeAxes(b *builder, node *onnx.Node) (axes []int, ok bool, err error) {
	if a := node.Attr("axes"); a != nil {
		return intDims(a.Ints), true, nil
	}
	list, ok, err := b.optionalInts(node, 1)
	return intDims(list), ok, err
}

// squeezeShape drops the given axes (every 1 when all is set), which must be 1.
func squeezeShape(in []int, axes []int, all bool) ([]int, error) {
	drop := map[int]bool{}
	for _, a := range axes {
		r, err := axis(a, len(in))
		if err != nil {
			return nil, err
		}
		if in[r] != 1 {
			return nil, fmt.Errorf("cannot squeeze axis %d of %v", a, in)
		}
		drop[r] = true
	}
	var out []int
	for i, d := range in {
		if drop[i] || (all && d == 1) {
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

// unsqueezeShape inserts ones at the given axes of the output.
func unsqueezeShape(in []int, axes []int) ([]int, error) {
	rank := len(in) + len(axes)
	insert := map[int]bool{}
	for _, a := range axes {
		r, err := axis(a, rank)
		if err != nil {
			return nil, err
		}
		if insert[r] {
			return nil, fmt.Errorf("axis %d repeated in %v", a, axes)
		}
		insert[r] = true
	}
	out := make([]int, 0, rank)
	next := 0
	for i := range rank {
		if insert[i] {
			out = append(out, 1)
		} else {
			out = append(out, in[next])
			next++
		}
	}
	return out, nil
}

// sliceIndex is the selection of Slice: starts, ends (clamped, negative from the
// end, INT64_MAX meaning the end), optional axes and steps; attributes before
// opset 10, inputs from 10 on.
func sliceIndex(b *builder, node *onnx.Node, in []int) ([][]int, error) {
	var starts, ends, axes, steps []int64
	if a := node.Attr("starts"); a != nil {
		starts = a.Ints
		if e := node.Attr("ends"); e != nil {
			ends = e.Ints
		}
		if x := node.Attr("axes"); x != nil {
			axes = x.Ints
		}
	} else {
		var err error
		if starts, err = b.ints(node, 1); err != nil {
			return nil, err
		}
		if ends, err = b.ints(node, 2); err != nil {
			return nil, err
		}
		if axes, _, err = b.optionalInts(node, 3); err != nil {
			return nil, err
		}
		if steps, _, err = b.optionalInts(node, 4); err != nil {
			return nil, err
		}
	}
	if len(ends) != len(starts) || (axes != nil && len(axes) != len(starts)) || (steps != nil && len(steps) != len(starts)) {
		return nil, fmt.Errorf("starts %v, ends %v, axes %v and steps %v differ in length", starts, ends, axes, steps)
	}
	index := make([][]int, len(in))
	for i, d := range in {
		index[i] = identityIndex(d)
	}
	for i := range starts {
		a := i
		if axes != nil {
			a = int(axes[i])
		}
		a, err := axis(a, len(in))
		if err != nil {
			return nil, err
		}
		step := int64(1)
		if steps != nil {
			step = steps[i]
		}
		if step == 0 {
			return nil, fmt.Errorf("slice step 0 on axis %d", a)
		}
		dim := int64(in[a])
		clamp := func(v, lo, hi int64) int64 {
			if v < 0 {
				v += dim // cannot overflow: dim >= 0
			}
			return min(max(v, lo), hi)
		}
		start, end := clamp(starts[i], 0, dim), clamp(ends[i], 0, dim)
		if step < 0 {
			start, end = clamp(starts[i], 0, dim-1), clamp(ends[i], -1, dim-1)
		}
		index[a] = rangeIndex(int(start), int(end), int(step))
	}
	return index, nil
}

// gatherIndex is Gather along axis with constant indices (negative from the end):
// the selection along axis, and the output shape, which replaces that axis by the
// indices' shape.
func gatherIndex(in []int, a int, indices *intTensor) ([][]int, []int, error) {
	a, err := axis(a, len(in))
	if err != nil {
		return nil, nil, err
	}
	index := make([][]int, len(in))
	for i, d := range in {
		index[i] = identityIndex(d)
	}
	index[a] = make([]int, len(indices.data))
	for i, v := range indices.data {
		if v < 0 {
			v += int64(in[a])
		}
		if v < 0 || v >= int64(in[a]) {
			return nil, nil, fmt.Errorf("index %d out of range for axis %d of %v", indices.data[i], a, in)
		}
		index[a][i] = int(v)
	}
	out := append(append(slices.Clone(in[:a]), indices.shape...), in[a+1:]...)
	return index, out, nil
}

// splitIndex is Split along axis: sizes from the attribute (to opset 12) or the
// constant input 1 (from 13), else equal parts, one per output.
func splitIndex(b *builder, node *onnx.Node, in []int) ([][][]int, error) {
	a, err := axis(int(attrInt(node, "axis", 0)), len(in))
	if err != nil {
		return nil, err
	}
	sizes := attrInts(node, "split", nil)
	if list, ok, err := b.optionalInts(node, 1); err != nil {
		return nil, err
	} else if ok {
		sizes = intDims(list)
	}
	parts := len(node.Outputs)
	if sizes == nil {
		if n := attrInt(node, "num_outputs", 0); n > 0 {
			parts = int(n)
		}
		each := (in[a] + parts - 1) / parts
		for left := in[a]; left > 0; left -= each {
			sizes = append(sizes, min(each, left))
		}
	}
	total := 0
	for _, s := range sizes {
		total += s
	}
	if total != in[a] || len(sizes) != len(node.Outputs) {
		return nil, fmt.Errorf("split %v of axis %d (%d) into %d outputs", sizes, a, in[a], len(node.Outputs))
	}
	var out [][][]int
	start := 0
	for _, s := range sizes {
		index := make([][]int, len(in))
		for i, d := range in {
			index[i] = identityIndex(d)
		}
		index[a] = rangeIndex(start, start+s, 1)
		start += s
		out = append(out, index)
	}
	return out, nil
}

// padIndex is Pad's selection: pads (begin of every axis, then ends) from the
// attribute (to opset 10) or the constant input 1 (from 11), optionally for the
// listed axes only (opset 18); negative pads crop. outside maps a position j
// beyond an axis of size n to the position it repeats, or -1 for the fill value.
func padIndex(b *builder, node *onnx.Node, in []int, outside func(j, n int) int) ([][]int, error) {
	var pads []int
	if a := node.Attr("pads"); a != nil {
		pads = intDims(a.Ints)
	} else {
		list, err := b.ints(node, 1)
		if err != nil {
			return nil, err
		}
		pads = intDims(list)
	}
	axes := make([]int, len(in))
	for i := range axes {
		axes[i] = i
	}
	if list, ok, err := b.optionalInts(node, 3); err != nil {
		return nil, err
	} else if ok {
		axes = intDims(list)
	}
	if len(pads) != 2*len(axes) {
		return nil, fmt.Errorf("pads %v for %d axes", pads, len(axes))
	}
	index := make([][]int, len(in))
	for i, d := range in {
		index[i] = identityIndex(d)
	}
	for i, a := range axes {
		a, err := axis(a, len(in))
		if err != nil {
			return nil, err
		}
		begin, end := pads[i], pads[i+len(axes)]
		var idx []int
		for j := -begin; j < in[a]+end; j++ {
			if j < 0 || j >= in[a] {
				idx = append(idx, outside(j, in[a]))
			} else {
				idx = append(idx, j)
			}
		}
		index[a] = idx
	}
	return index, nil
}

// transposePerm is Transpose's perm, reversed axes by default.
func transposePerm(node *onnx.Node, rank int) ([]int, error) {
	perm := attrInts(node, "perm", nil)
	if perm == nil {
		for i := range rank {
			perm = append(perm, rank-1-i)
		}
	}
	seen := make([]bool, rank)
	if len(perm) != rank {
		return nil, fmt.Errorf("perm %v for rank %d", perm, rank)
	}
	for _, p := range perm {
		if p < 0 || p >= rank || seen[p] {
			return nil, fmt.Errorf("perm %v is not a permutation of %d axes", perm, rank)
		}
		seen[p] = true
	}
	return perm, nil
}
