package nn

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"
)

// The kernels of this file combine two inputs with numpy broadcasting over any
// number of axes, which gorgonia's Broadcast ops (at most 4 axes) cannot. Both
// inputs have one rank: the builders prepend ones to the shorter (alignRanks), as
// numpy does and as kernelOp's type wants.

// broadcastShapes is the numpy broadcast of shapes a and b of one rank.
func broadcastShapes(a, b []int) ([]int, error) {
	if len(a) != len(b) {
		return nil, fmt.Errorf("shapes %v and %v differ in rank", a, b)
	}
	out := make([]int, len(a))
	for i := range a {
		switch {
		case a[i] == b[i] || b[i] == 1:
			out[i] = a[i]
		case a[i] == 1:
			out[i] = b[i]
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
		}
	}
	return out, nil
}

// broadcastSources returns, for each element of out in row-major order, the flat
// index of the element of in (broadcast to out) it reads.
func broadcastSources(out, in []int) []int {
	strides, _ := rowMajor(in)
	for a, d := range in {
		if d == 1 {
			strides[a] = 0
		}
	}
	_, size := rowMajor(out)
	src := make([]int, size)
	pos := make([]int, len(out))
	for o := range src {
		unravel(o, out, pos)
		for a, p := range pos {
			src[o] += p * strides[a]
		}
	}
	return src
}

// binaryKernel applies f(x, y) elementwise with broadcasting; dx and dy are its
// partial derivatives, and a broadcast input's gradient sums over the positions it
// was broadcast to.
type binaryKernel struct {
	name   string
	f      func(x, y float64) float64
	dx, dy func(x, y float64) float64
}

func (k *binaryKernel) String() string         { return k.name }
func (k *binaryKernel) differentiable() []bool { return []bool{true, true} }

func (k *binaryKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	out, err := broadcastShapes(in[0], in[1])
	return tensor.Shape(out), err
}

func (k *binaryKernel) forward(out []float64, in [][]float64, shapes []tensor.Shape) {
	shape, _ := broadcastShapes(shapes[0], shapes[1])
	xs, ys := broadcastSources(shape, shapes[0]), broadcastSources(shape, shapes[1])
	for o := range out {
		out[o] = k.f(in[0][xs[o]], in[1][ys[o]])
	}
}

func (k *binaryKernel) backward(wrt int, grad, gradOut []float64, in [][]float64, shapes []tensor.Shape) {
	shape, _ := broadcastShapes(shapes[0], shapes[1])
	xs, ys := broadcastSources(shape, shapes[0]), broadcastSources(shape, shapes[1])
	d, src := k.dx, xs
	if wrt == 1 {
		d, src = k.dy, ys
	}
	for o, g := range gradOut {
		grad[src[o]] += g * d(in[0][xs[o]], in[1][ys[o]])
	}
}

// powBroadcastKernel is x^y for a tensor exponent. Its derivatives follow
// PyTorch's at the edges: d/dx is 0 where y is 0 (not 0 * x^-1), and d/dy is 0
// where x is 0 and y >= 0 (not x^y * log 0); a negative base gives NaN for d/dy,
// as log does.
func powBroadcastKernel() *binaryKernel {
	return &binaryKernel{
		name: "Pow",
		f:    math.Pow,
		dx: func(x, y float64) float64 {
			if y == 0 {
				return 0
			}
			return y * math.Pow(x, y-1)
		},
		dy: func(x, y float64) float64 {
			if x == 0 && y >= 0 {
				return 0
			}
			return math.Pow(x, y) * math.Log(x)
		},
	}
}

// matMulKernel is numpy's matmul of a (..., n, k) and b (..., k, m) of one rank,
// the leading (batch) axes broadcast against each other.
type matMulKernel struct{}

func (matMulKernel) String() string         { return "MatMul" }
func (matMulKernel) differentiable() []bool { return []bool{true, true} }

// dims splits the shapes into the output's batch shape and the matrix sizes.
func (matMulKernel) dims(a, b tensor.Shape) (batch []int, n, k, m int, err error) {
	r := len(a)
	if r < 2 || len(b) != r {
		return nil, 0, 0, 0, fmt.Errorf("MatMul needs two inputs of one rank, 2 or more, got %v and %v", a, b)
	}
	if a[r-1] != b[r-2] {
		return nil, 0, 0, 0, fmt.Errorf("MatMul of %v and %v: inner sizes %d and %d differ", a, b, a[r-1], b[r-2])
	}
	batch, err = broadcastShapes(a[:r-2], b[:r-2])
	return batch, a[r-2], a[r-1], b[r-1], err
}

func (mk matMulKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	batch, n, _, m, err := mk.dims(in[0], in[1])
	if err != nil {
		return nil, err
	}
	return tensor.Shape(append(batch, n, m)), nil
}

// dims3 is n, k, m of the inputs.
func (mk matMulKernel) dims3(shapes []tensor.Shape) (n, k, m int) {
	_, n, k, m, _ = mk.dims(shapes[0], shapes[1])
	return n, k, m
}

// each calls fn with the offsets of the a, b and output matrices of every output
// batch position.
func (mk matMulKernel) each(shapes []tensor.Shape, fn func(a0, b0, y0 int)) {
	a, b := shapes[0], shapes[1]
	r := len(a)
	batch, n, k, m, _ := mk.dims(a, b)
	as, bs := broadcastSources(batch, a[:r-2]), broadcastSources(batch, b[:r-2])
	for p := range as {
		fn(as[p]*n*k, bs[p]*k*m, p*n*m)
	}
}

func (mk matMulKernel) forward(out []float64, in [][]float64, shapes []tensor.Shape) {
	a, b := in[0], in[1]
	n, k, m := mk.dims3(shapes)
	mk.each(shapes, func(a0, b0, y0 int) {
		for i := range n {
			row := out[y0+i*m : y0+(i+1)*m]
			for p := range k {
				av := a[a0+i*k+p]
				for j, bv := range b[b0+p*m : b0+(p+1)*m] {
					row[j] += av * bv
				}
			}
		}
	})
}

func (mk matMulKernel) backward(wrt int, grad, gradOut []float64, in [][]float64, shapes []tensor.Shape) {
	a, b := in[0], in[1]
	n, k, m := mk.dims3(shapes)
	mk.each(shapes, func(a0, b0, y0 int) {
		for i := range n {
			g := gradOut[y0+i*m : y0+(i+1)*m]
			for p := range k {
				if wrt == 0 {
					// dA = dY B^T
					sum := 0.0
					for j, bv := range b[b0+p*m : b0+(p+1)*m] {
						sum += g[j] * bv
					}
					grad[a0+i*k+p] += sum
					continue
				}
				// dB = A^T dY
				av := a[a0+i*k+p]
				row := grad[b0+p*m : b0+(p+1)*m]
				for j, gv := range g {
					row[j] += av * gv
				}
			}
		}
	})
}
