package nn

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// kernel is an operation gorgonia v0.9.18 lacks (grouped convolution, padded or
// ceil-mode pooling, constant padding, strided selection, clipping activations),
// written as plain Go loops over float64 values. kernelOp turns it into a gorgonia
// Op with a symbolic gradient, so graphs that use it train and attack as the
// built-in ops do.
//
// The loops are deliberately simple: they are the reference the fast inference
// engine's kernels are checked against, and they live in files of their own
// (kernels_*.go) so that engine can replace them without touching the builders.
type kernel interface {
	// String names the kernel with every parameter that affects its result; it is
	// also the op's hash, and gorgonia merges nodes whose op hashes and inputs match.
	String() string
	// outShape is the output shape for the given input shapes, or an error.
	outShape(in []tensor.Shape) (tensor.Shape, error)
	// forward writes the output into out (zeroed, of outShape's size).
	forward(out []float64, in [][]float64, shapes []tensor.Shape)
	// backward adds to grad (zeroed, shaped as input wrt) the gradient of
	// sum(out * gradOut) with respect to input wrt.
	backward(wrt int, grad, gradOut []float64, in [][]float64, shapes []tensor.Shape)
	// differentiable reports, per input, whether backward supports it.
	differentiable() []bool
}

// applyKernel adds k applied to inputs to their graph.
func applyKernel(k kernel, inputs ...*G.Node) (*G.Node, error) {
	return G.ApplyOp(&kernelOp{k: k, arity: len(inputs)}, inputs...)
}

// kernelOp is the forward op of a kernel.
type kernelOp struct {
	k     kernel
	arity int
}

func (op *kernelOp) Arity() int { return op.arity }

func (op *kernelOp) Type() hm.Type {
	return fnType(op.arity)
}

func (op *kernelOp) InferShape(inputs ...G.DimSizer) (tensor.Shape, error) {
	shapes, err := shapesOf(inputs)
	if err != nil {
		return nil, err
	}
	return op.k.outShape(shapes)
}

func (op *kernelOp) Do(inputs ...G.Value) (G.Value, error) {
	in, shapes, dt, err := float64Inputs(inputs)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op.k, err)
	}
	shape, err := op.k.outShape(shapes)
	if err != nil {
		return nil, err
	}
	out := make([]float64, shape.TotalSize())
	op.k.forward(out, in, shapes)
	return newValue(dt, shape, out), nil
}

func (op *kernelOp) ReturnsPtr() bool      { return false }
func (op *kernelOp) CallsExtern() bool     { return false }
func (op *kernelOp) OverwritesInput() int  { return -1 }
func (op *kernelOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op *kernelOp) Hashcode() uint32      { return hashOf(op) }
func (op *kernelOp) String() string        { return op.k.String() }

func (op *kernelOp) DiffWRT(inputs int) []bool { return op.k.differentiable() }

// SymDiff adds one gradient node per differentiable input.
func (op *kernelOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	diff := op.k.differentiable()
	grads := make(G.Nodes, len(inputs))
	for i := range inputs {
		if !diff[i] {
			continue
		}
		g, err := G.ApplyOp(&kernelGradOp{k: op.k, wrt: i, arity: len(inputs) + 1}, append(append(G.Nodes{}, inputs...), grad)...)
		if err != nil {
			return nil, err
		}
		grads[i] = g
	}
	return grads, nil
}

// kernelGradOp computes a kernel's gradient with respect to one input; its inputs
// are the forward op's inputs followed by the gradient of the output.
type kernelGradOp struct {
	k     kernel
	wrt   int
	arity int
}

func (op *kernelGradOp) Arity() int    { return op.arity }
func (op *kernelGradOp) Type() hm.Type { return fnType(op.arity) }

func (op *kernelGradOp) InferShape(inputs ...G.DimSizer) (tensor.Shape, error) {
	shapes, err := shapesOf(inputs)
	if err != nil {
		return nil, err
	}
	return shapes[op.wrt].Clone(), nil
}

func (op *kernelGradOp) Do(inputs ...G.Value) (G.Value, error) {
	in, shapes, dt, err := float64Inputs(inputs)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	n := len(in) - 1
	grad := make([]float64, shapes[op.wrt].TotalSize())
	op.k.backward(op.wrt, grad, in[n], in[:n], shapes[:n])
	return newValue(dt, shapes[op.wrt], grad), nil
}

func (op *kernelGradOp) ReturnsPtr() bool      { return false }
func (op *kernelGradOp) CallsExtern() bool     { return false }
func (op *kernelGradOp) OverwritesInput() int  { return -1 }
func (op *kernelGradOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op *kernelGradOp) Hashcode() uint32      { return hashOf(op) }
func (op *kernelGradOp) String() string        { return fmt.Sprintf("d%v/d#%d", op.k, op.wrt) }

// fnType is the type of an op taking arity values of one type and returning one
// more: every kernel's inputs, gradients and output share their element type and
// rank (shapes, which InferShape checks, carry the rest).
func fnType(arity int) hm.Type {
	a := hm.TypeVariable('a')
	types := make([]hm.Type, 0, arity+1)
	for range arity + 1 {
		types = append(types, a)
	}
	return hm.NewFnType(types...)
}

func hashOf(op fmt.Stringer) uint32 {
	h := fnv.New32a()
	fmt.Fprint(h, op.String())
	return h.Sum32()
}

func shapesOf(inputs []G.DimSizer) ([]tensor.Shape, error) {
	shapes := make([]tensor.Shape, len(inputs))
	for i, in := range inputs {
		s, ok := in.(tensor.Shape)
		if !ok {
			return nil, fmt.Errorf("input %d has no shape", i)
		}
		shapes[i] = s
	}
	return shapes, nil
}

// float64Inputs copies the op's input values into float64 slices; all must share
// one dtype, float32 or float64, which is returned.
func float64Inputs(values []G.Value) ([][]float64, []tensor.Shape, tensor.Dtype, error) {
	in := make([][]float64, len(values))
	shapes := make([]tensor.Shape, len(values))
	var dt tensor.Dtype
	for i, v := range values {
		shapes[i] = v.Shape()
		switch data := v.Data().(type) {
		case []float64:
			in[i], dt = data, tensor.Float64
		case []float32:
			f := make([]float64, len(data))
			for j, x := range data {
				f[j] = float64(x)
			}
			in[i], dt = f, tensor.Float32
		case float64:
			in[i], dt = []float64{data}, tensor.Float64
		case float32:
			in[i], dt = []float64{float64(data)}, tensor.Float32
		default:
			return nil, nil, dt, fmt.Errorf("input %d holds %T, want float32 or float64", i, data)
		}
	}
	return in, shapes, dt, nil
}

func newValue(dt tensor.Dtype, shape tensor.Shape, data []float64) G.Value {
	if dt == tensor.Float64 {
		return tensor.New(tensor.WithShape(shape.Clone()...), tensor.WithBacking(data))
	}
	f := make([]float32, len(data))
	for i, x := range data {
		f[i] = float32(x)
	}
	return tensor.New(tensor.WithShape(shape.Clone()...), tensor.WithBacking(f))
}
