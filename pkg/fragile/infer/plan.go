package infer

import (
	"fmt"
	"slices"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// Float is the element type a plan computes in.
type Float interface{ ~float32 | ~float64 }

// tensor is a dense row-major array.
type tensor[T Float] struct {
	shape []int
	data  []T
}

func newTensor[T Float](shape []int) *tensor[T] {
	return &tensor[T]{shape: slices.Clone(shape), data: make([]T, size(shape))}
}

func size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// value is what one ONNX name holds while planning: a float tensor, computed at
// run time or known now (static), or an integer constant (shapes, axes, indices),
// always static.
type value[T Float] struct {
	t      *tensor[T]
	ints   []int64
	shape  []int // of ints
	isInt  bool
	static bool
	// shared marks a tensor whose buffer another value also uses (a reshape view,
	// an Identity): kernels never write into it in place.
	shared bool
}

func (v *value[T]) dims() []int {
	if v.isInt {
		return v.shape
	}
	return v.t.shape
}

// plan is one example's worth of buffers and the kernels that fill them, in order.
type plan[T Float] struct {
	input, output *tensor[T]
	steps         []func()
	// values counts the elements of every run-time value the graph names.
	values int
}

// planner carries the state of one newPlan call.
type planner[T Float] struct {
	prog   *Program
	values map[string]*value[T]
	steps  []func()
	// skip marks nodes fused into an earlier kernel.
	skip map[int]bool
}

// newPlan plans prog for one example in T.
func newPlan[T Float](prog *Program) (*plan[T], error) {
	p := &planner[T]{prog: prog, values: map[string]*value[T]{}, skip: map[int]bool{}}
	in := newTensor[T](append([]int{1}, prog.InputShape...))
	p.values[prog.InputName] = &value[T]{t: in, shared: true}
	nodes := prog.model.Graph.Nodes
	for i := range nodes {
		if p.skip[i] {
			continue
		}
		if err := p.apply(i, &nodes[i]); err != nil {
			return nil, err
		}
		if _, ok := p.values[prog.logits]; ok && prog.logits != prog.OutputName {
			break // the final Softmax is not run
		}
	}
	out, ok := p.values[prog.logits]
	if !ok {
		return nil, fmt.Errorf("output %s is never computed", prog.OutputName)
	}
	if out.isInt || len(out.t.shape) != 2 || out.t.shape[0] != 1 {
		return nil, fmt.Errorf("%w: output %s has shape %v, a classifier's must be (batch, classes)", ErrUnsupported, prog.OutputName, out.dims())
	}
	values := 0
	for _, v := range p.values {
		if !v.static && !v.isInt {
			values += len(v.t.data)
		}
	}
	return &plan[T]{input: in, output: out.t, steps: p.steps, values: values}, nil
}

// apply plans one node; when every input is static, its kernels run now and its
// outputs become static (constant folding).
func (p *planner[T]) apply(i int, node *onnx.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("node %s: op %s: %v", node.Label(), node.OpType, r)
		}
	}()
	static := true
	for k, in := range node.Inputs {
		if in == "" {
			continue
		}
		v, err := p.lookup(in)
		if err != nil {
			return fmt.Errorf("node %s: op %s: input %d: %w", node.Label(), node.OpType, k, err)
		}
		static = static && v.static
	}
	first := len(p.steps)
	if err := p.op(i, node); err != nil {
		return fmt.Errorf("node %s: op %s: %w", node.Label(), node.OpType, err)
	}
	if static {
		for _, step := range p.steps[first:] {
			step()
		}
		p.steps = p.steps[:first]
		for _, out := range node.Outputs {
			if v, ok := p.values[out]; ok {
				v.static = true
			}
		}
	}
	return nil
}

// lookup returns the value named name, turning an initializer into a static value
// on first use.
func (p *planner[T]) lookup(name string) (*value[T], error) {
	if v, ok := p.values[name]; ok {
		return v, nil
	}
	w, ok := p.prog.weights[name]
	if !ok {
		return nil, fmt.Errorf("%q is neither computed before this node nor an initializer", name)
	}
	v := constantValue[T](w)
	if n := size(v.dims()); (v.isInt && len(v.ints) != n) || (!v.isInt && len(v.t.data) != n) {
		return nil, fmt.Errorf("initializer %q has dims %v but %d values", name, w.Dims, max(len(v.ints), len(w.Float)))
	}
	p.values[name] = v
	return v, nil
}

func constantValue[T Float](w *onnx.Tensor) *value[T] {
	shape := make([]int, len(w.Dims))
	for i, d := range w.Dims {
		shape[i] = int(d)
	}
	if w.DataType == onnx.DataTypeFloat {
		if data, ok := any(w.Float).([]T); ok {
			// Shared with the model, read only: every kernel that changes weights copies them.
			return &value[T]{t: &tensor[T]{shape: shape, data: data}, static: true, shared: true}
		}
		t := &tensor[T]{shape: shape, data: make([]T, len(w.Float))}
		for i, x := range w.Float {
			t.data[i] = T(x)
		}
		return &value[T]{t: t, static: true, shared: true}
	}
	return &value[T]{ints: w.Int64, shape: shape, isInt: true, static: true}
}

// in returns node's k-th input, which must exist.
func (p *planner[T]) in(node *onnx.Node, k int) (*value[T], error) {
	if k >= len(node.Inputs) || node.Inputs[k] == "" {
		return nil, fmt.Errorf("missing input %d", k)
	}
	return p.lookup(node.Inputs[k])
}

// floatIn returns node's k-th input as a float tensor.
func (p *planner[T]) floatIn(node *onnx.Node, k int) (*value[T], error) {
	v, err := p.in(node, k)
	if err != nil {
		return nil, err
	}
	if v.isInt {
		return nil, unsupported("input %d (%s) is an integer tensor where floats are needed", k, node.Inputs[k])
	}
	return v, nil
}

// optional reports whether node has a k-th input.
func optional(node *onnx.Node, k int) bool { return k < len(node.Inputs) && node.Inputs[k] != "" }

// intsIn returns node's k-th input as static integers.
func (p *planner[T]) intsIn(node *onnx.Node, k int) ([]int64, error) {
	v, err := p.in(node, k)
	if err != nil {
		return nil, err
	}
	if !v.static {
		return nil, unsupported("input %d (%s) must be a constant known before the model runs", k, node.Inputs[k])
	}
	if v.isInt {
		return v.ints, nil
	}
	out := make([]int64, len(v.t.data))
	for i, x := range v.t.data {
		out[i] = int64(x)
	}
	return out, nil
}

// inPlace reports whether a kernel may overwrite v, node's k-th input: a run-time
// buffer no other node reads.
func (p *planner[T]) inPlace(node *onnx.Node, k int, v *value[T]) bool {
	return !v.static && !v.shared && !v.isInt && p.prog.uses[node.Inputs[k]] == 1
}

// output returns a buffer for node's k-th output of the given shape: x's own when
// the kernel may write in place, else a new one.
func (p *planner[T]) output(node *onnx.Node, k int, shape []int, x *value[T], xIndex int) *tensor[T] {
	var t *tensor[T]
	if x != nil && p.inPlace(node, xIndex, x) && slices.Equal(x.t.shape, shape) {
		t = x.t
	} else {
		t = newTensor[T](shape)
	}
	p.values[node.Outputs[k]] = &value[T]{t: t}
	return t
}

// view makes node's k-th output a reshaped view of x's buffer.
func (p *planner[T]) view(node *onnx.Node, k int, x *value[T], xIndex int, shape []int) {
	shared := x.shared || x.static || p.prog.uses[node.Inputs[xIndex]] > 1
	p.values[node.Outputs[k]] = &value[T]{t: &tensor[T]{shape: slices.Clone(shape), data: x.t.data}, static: x.static, shared: shared}
}

func (p *planner[T]) setInts(node *onnx.Node, k int, ints []int64, shape []int) {
	p.values[node.Outputs[k]] = &value[T]{ints: ints, shape: shape, isInt: true, static: true}
}

func (p *planner[T]) add(step func()) { p.steps = append(p.steps, step) }

// soleConsumer returns the node that alone reads output name, if any.
func (p *planner[T]) soleConsumer(name string) (int, *onnx.Node) {
	if p.prog.uses[name] != 1 {
		return -1, nil
	}
	i, ok := p.prog.consumer[name]
	if !ok {
		return -1, nil
	}
	return i, &p.prog.model.Graph.Nodes[i]
}

// Attribute helpers.

func attrInt(node *onnx.Node, name string, def int64) int64 {
	if a := node.Attr(name); a != nil {
		return a.I
	}
	return def
}

func attrFloat(node *onnx.Node, name string, def float64) float64 {
	if a := node.Attr(name); a != nil {
		return float64(a.F)
	}
	return def
}

func attrInts(node *onnx.Node, name string) ([]int64, bool) {
	if a := node.Attr(name); a != nil {
		return a.Ints, true
	}
	return nil, false
}

func attrString(node *onnx.Node, name, def string) string {
	if a := node.Attr(name); a != nil {
		return string(a.S)
	}
	return def
}

// axis resolves a possibly negative axis against rank.
func axis(a int64, rank int) (int, error) {
	if a < 0 {
		a += int64(rank)
	}
	if a < 0 || a >= int64(rank) {
		return 0, unsupported("axis %d out of range for rank %d", a, rank)
	}
	return int(a), nil
}

func strides(shape []int) []int {
	s := make([]int, len(shape))
	n := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = n
		n *= shape[i]
	}
	return s
}
