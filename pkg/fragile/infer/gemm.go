package infer

import (
	"slices"

	"gonum.org/v1/gonum/blas"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// gemm computes c = op(a) op(b) + beta c for row-major matrices, m x n = (m x k)(k x n),
// with the BLAS this binary was built with (blas_*.go).
func gemm[T Float](transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	ta, tb := blas.NoTrans, blas.NoTrans
	if transA {
		ta = blas.Trans
	}
	if transB {
		tb = blas.Trans
	}
	switch {
	case n == 1 && !transB:
		// A matrix-vector product (a convolution with one output pixel, resnet18's
		// last stage at 32 px): GEMM would pack the whole weight matrix on every call.
		rows, cols := m, k
		if transA {
			rows, cols = k, m
		}
		gemv(ta, rows, cols, a, lda, b, ldb, beta, c, ldc)
		return
	case m == 1 && !transA:
		// One row times a matrix (a fully connected layer on one example): c^T = op(b)^T a^T.
		rows, cols, t := n, k, blas.NoTrans
		if !transB {
			rows, cols, t = k, n, blas.Trans
		}
		gemv(t, rows, cols, b, ldb, a, 1, beta, c, 1)
		return
	}
	switch a := any(a).(type) {
	case []float32:
		blas32.Sgemm(ta, tb, m, n, k, 1, a, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	case []float64:
		blas64.Dgemm(ta, tb, m, n, k, 1, a, lda, any(b).([]float64), ldb, float64(beta), any(c).([]float64), ldc)
	}
}

// gemv computes y = op(a) x + beta y, a stored rows x cols.
func gemv[T Float](t blas.Transpose, rows, cols int, a []T, lda int, x []T, incX int, beta T, y []T, incY int) {
	switch a := any(a).(type) {
	case []float32:
		blas32.Sgemv(t, rows, cols, 1, a, lda, any(x).([]float32), incX, float32(beta), any(y).([]float32), incY)
	case []float64:
		blas64.Dgemv(t, rows, cols, 1, a, lda, any(x).([]float64), incX, float64(beta), any(y).([]float64), incY)
	}
}

// gemm plans Gemm: alpha op(A) op(B) + beta C, C broadcast to the output.
func (p *planner[T]) gemm(node *onnx.Node) error {
	a, err := p.floatIn(node, 0)
	if err != nil {
		return err
	}
	b, err := p.floatIn(node, 1)
	if err != nil {
		return err
	}
	if len(a.t.shape) != 2 || len(b.t.shape) != 2 {
		return unsupported("inputs %v and %v: Gemm takes matrices", a.t.shape, b.t.shape)
	}
	transA, transB := attrInt(node, "transA", 0) != 0, attrInt(node, "transB", 0) != 0
	alpha, beta := T(attrFloat(node, "alpha", 1)), T(attrFloat(node, "beta", 1))
	m, k := a.t.shape[0], a.t.shape[1]
	if transA {
		m, k = k, m
	}
	kb, n := b.t.shape[0], b.t.shape[1]
	if transB {
		kb, n = n, kb
	}
	if k != kb {
		return unsupported("inputs %v and %v do not multiply", a.t.shape, b.t.shape)
	}
	out := p.output(node, 0, []int{m, n}, nil, 0)
	var bias func()
	if optional(node, 2) {
		c, err := p.floatIn(node, 2)
		if err != nil {
			return err
		}
		if _, ok := broadcastShape(out.shape, c.t.shape); !ok || len(c.t.shape) > 2 {
			return unsupported("C of shape %v does not broadcast to %v", c.t.shape, out.shape)
		}
		scaled := &tensor[T]{shape: c.t.shape, data: slices.Clone(c.t.data)}
		for i := range scaled.data {
			scaled.data[i] *= beta
		}
		zero := &tensor[T]{shape: []int{1}, data: []T{0}}
		bias = broadcastKernel("Add", scaled, zero, &tensor[T]{shape: out.shape, data: out.data})
		if len(scaled.data) == len(out.data) {
			bias = func() { copy(out.data, scaled.data) }
		}
	}
	weights := b.t.data
	if alpha != 1 {
		weights = slices.Clone(weights)
		for i := range weights {
			weights[i] *= alpha
		}
	}
	lda, ldb := k, n
	if transA {
		lda = m
	}
	if transB {
		ldb = k
	}
	x, y := a.t.data, out.data
	p.add(func() {
		var acc T
		if bias != nil {
			bias()
			acc = 1
		}
		gemm(transA, transB, m, n, k, x, lda, weights, ldb, acc, y, n)
	})
	return nil
}

// matMul plans MatMul with numpy semantics: 1-D operands are promoted and the
// leading (batch) axes broadcast.
func (p *planner[T]) matMul(node *onnx.Node) error {
	a, err := p.floatIn(node, 0)
	if err != nil {
		return err
	}
	b, err := p.floatIn(node, 1)
	if err != nil {
		return err
	}
	as, bs := slices.Clone(a.t.shape), slices.Clone(b.t.shape)
	if len(as) == 0 || len(bs) == 0 {
		return unsupported("MatMul of a scalar")
	}
	dropA, dropB := len(as) == 1, len(bs) == 1
	if dropA {
		as = []int{1, as[0]}
	}
	if dropB {
		bs = []int{bs[0], 1}
	}
	m, k, kb, n := as[len(as)-2], as[len(as)-1], bs[len(bs)-2], bs[len(bs)-1]
	if k != kb {
		return unsupported("inputs %v and %v do not multiply", a.t.shape, b.t.shape)
	}
	batch, ok := broadcastShape(as[:len(as)-2], bs[:len(bs)-2])
	if !ok {
		return unsupported("batch axes of %v and %v do not broadcast", a.t.shape, b.t.shape)
	}
	shape := append(slices.Clone(batch), m, n)
	outShape := slices.Clone(batch)
	if !dropA {
		outShape = append(outShape, m)
	}
	if !dropB {
		outShape = append(outShape, n)
	}
	out := p.output(node, 0, outShape, nil, 0)
	count := size(batch)
	// Offsets of each batch entry's matrices in a and b.
	offA, offB := make([]int, count), make([]int, count)
	sa, sb := broadcastStrides(as[:len(as)-2], batch), broadcastStrides(bs[:len(bs)-2], batch)
	st := strides(batch)
	for i := 0; i < count; i++ {
		for d := range batch {
			idx := i / st[d] % batch[d]
			offA[i] += idx * sa[d] * m * k
			offB[i] += idx * sb[d] * k * n
		}
	}
	_ = shape
	x, w, y := a.t.data, b.t.data, out.data
	p.add(func() {
		for i := 0; i < count; i++ {
			gemm(false, false, m, n, k, x[offA[i]:], k, w[offB[i]:], n, 0, y[i*m*n:], n)
		}
	})
	return nil
}
