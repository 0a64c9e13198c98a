package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// LogSoftmax computes log(softmax(x)) over the rows of a (rows x classes) matrix,
// shifting each row by its own maximum so that logits in the thousands (mnist-7's
// are) do not overflow.
//
// gorgonia's LogSoftMax/SoftMax ops are not used: in tensor v0.9.24 they shift every
// row by the first element of the whole tensor rather than by the row's maximum, so
// any row whose logits exceed the first row's by ~90 overflows to NaN.
func LogSoftmax(x *G.Node) (*G.Node, error) {
	if x.Dims() != 2 {
		return nil, fmt.Errorf("log-softmax needs a (rows, classes) matrix, got %v", x.Shape())
	}
	rows := x.Shape()[0]
	col := tensor.Shape{rows, 1}
	// The shift cancels out of the result; its gradient contribution is zero.
	m, err := G.Max(x, 1)
	if err != nil {
		return nil, err
	}
	if m, err = G.Reshape(m, col); err != nil {
		return nil, err
	}
	shifted, err := G.BroadcastSub(x, m, nil, []byte{1})
	if err != nil {
		return nil, err
	}
	e, err := G.Exp(shifted)
	if err != nil {
		return nil, err
	}
	s, err := G.Sum(e, 1)
	if err != nil {
		return nil, err
	}
	lse, err := G.Log(s)
	if err != nil {
		return nil, err
	}
	if lse, err = G.Reshape(lse, col); err != nil {
		return nil, err
	}
	return G.BroadcastSub(shifted, lse, nil, []byte{1})
}

// Softmax is exp(LogSoftmax(x)).
func Softmax(x *G.Node) (*G.Node, error) {
	l, err := LogSoftmax(x)
	if err != nil {
		return nil, err
	}
	return G.Exp(l)
}
