package nn

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"
)

// unaryKernel applies f elementwise; df is its derivative. It carries the
// activations gorgonia has no op for (Clip, HardSigmoid, HardSwish, Erf, Pow by a
// constant), each with its parameters in name so equal ops hash equal.
type unaryKernel struct {
	name string
	f    func(float64) float64
	df   func(float64) float64
}

func (k *unaryKernel) String() string                                   { return k.name }
func (k *unaryKernel) differentiable() []bool                           { return []bool{true} }
func (k *unaryKernel) outShape(in []tensor.Shape) (tensor.Shape, error) { return in[0].Clone(), nil }

func (k *unaryKernel) forward(out []float64, in [][]float64, _ []tensor.Shape) {
	for i, x := range in[0] {
		out[i] = k.f(x)
	}
}

func (k *unaryKernel) backward(_ int, grad, gradOut []float64, in [][]float64, _ []tensor.Shape) {
	for i, x := range in[0] {
		grad[i] = gradOut[i] * k.df(x)
	}
}

// clipKernel bounds x to [lo, hi]; the gradient is 1 strictly inside, 0 outside.
func clipKernel(lo, hi float64) *unaryKernel {
	return &unaryKernel{
		name: fmt.Sprintf("Clip(%g, %g)", lo, hi),
		f:    func(x float64) float64 { return math.Min(math.Max(x, lo), hi) },
		df:   func(x float64) float64 { return inside(x, lo, hi) },
	}
}

// hardSigmoidKernel is max(0, min(1, alpha*x + beta)).
func hardSigmoidKernel(alpha, beta float64) *unaryKernel {
	return &unaryKernel{
		name: fmt.Sprintf("HardSigmoid(%g, %g)", alpha, beta),
		f:    func(x float64) float64 { return math.Min(math.Max(alpha*x+beta, 0), 1) },
		df:   func(x float64) float64 { return alpha * inside(alpha*x+beta, 0, 1) },
	}
}

// hardSwishKernel is x * HardSigmoid(x) with alpha 1/6 and beta 1/2.
func hardSwishKernel() *unaryKernel {
	const alpha, beta = 1.0 / 6, 0.5
	return &unaryKernel{
		name: "HardSwish",
		f:    func(x float64) float64 { return x * math.Min(math.Max(alpha*x+beta, 0), 1) },
		df: func(x float64) float64 {
			s := math.Min(math.Max(alpha*x+beta, 0), 1)
			return s + x*alpha*inside(alpha*x+beta, 0, 1)
		},
	}
}

func erfKernel() *unaryKernel {
	return &unaryKernel{
		name: "Erf",
		f:    math.Erf,
		df:   func(x float64) float64 { return 2 / math.Sqrt(math.Pi) * math.Exp(-x*x) },
	}
}

// powKernel is x^p for a constant exponent p.
func powKernel(p float64) *unaryKernel {
	return &unaryKernel{
		name: fmt.Sprintf("Pow(%g)", p),
		f:    func(x float64) float64 { return math.Pow(x, p) },
		df:   func(x float64) float64 { return p * math.Pow(x, p-1) },
	}
}

func inside(x, lo, hi float64) float64 {
	if x > lo && x < hi {
		return 1
	}
	return 0
}
