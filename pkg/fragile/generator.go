package fragile

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The generator is a two-layer perceptron from key-derived Gaussian noise to a
// trigger in the model's input range. The paper grows a convolutional generator
// for 32x32 colour images; for the small inputs this product targets a dense
// generator reaches 100% key match in fewer steps, and every trigger is free to
// take any value in the input range.
const (
	noiseDim     = 64
	generatorDim = 256
)

// generator owns the learnable nodes of the trigger generator.
type generator struct {
	w1, b1, w2, b2 *G.Node
}

// generatorWeights are the generator's parameter values, in learnables' order: w1, b1,
// w2, b2, each row-major.
type generatorWeights [4][]float32

// drawGenerator draws the generator's initial weights from a key-derived source:
// He initialisation for the ReLU layer, Glorot for the sigmoid output layer, zero
// biases. gorgonia's own initialisers draw from a global source, so they are not used.
func drawGenerator(r *rand.Rand, outputs int) generatorWeights {
	return generatorWeights{
		gaussian(r, noiseDim*generatorDim, math.Sqrt(2.0/noiseDim)),
		make([]float32, generatorDim),
		gaussian(r, generatorDim*outputs, math.Sqrt(2.0/float64(generatorDim+outputs))),
		make([]float32, outputs),
	}
}

// newGenerator creates in g a generator holding copies of w.
func newGenerator(g *G.ExprGraph, w generatorWeights) *generator {
	outputs := len(w[3])
	return &generator{
		w1: param(g, "gen_w1", slices.Clone(w[0]), noiseDim, generatorDim),
		b1: param(g, "gen_b1", slices.Clone(w[1]), 1, generatorDim),
		w2: param(g, "gen_w2", slices.Clone(w[2]), generatorDim, outputs),
		b2: param(g, "gen_b2", slices.Clone(w[3]), 1, outputs),
	}
}

func (gen *generator) learnables() G.Nodes { return G.Nodes{gen.w1, gen.b1, gen.w2, gen.b2} }

// forward maps noise z (n x noiseDim) to n pixel-space triggers scaled into
// [lo, hi], one row each.
func (gen *generator) forward(z *G.Node, lo, hi float64) (*G.Node, error) {
	h, err := dense(z, gen.w1, gen.b1)
	if err != nil {
		return nil, fmt.Errorf("generator layer 1: %w", err)
	}
	if h, err = G.Rectify(h); err != nil {
		return nil, fmt.Errorf("generator layer 1: %w", err)
	}
	o, err := dense(h, gen.w2, gen.b2)
	if err != nil {
		return nil, fmt.Errorf("generator layer 2: %w", err)
	}
	if o, err = G.Sigmoid(o); err != nil {
		return nil, fmt.Errorf("generator output: %w", err)
	}
	if o, err = G.Mul(o, G.NewConstant(float32(hi-lo))); err != nil {
		return nil, fmt.Errorf("generator output scale: %w", err)
	}
	if lo != 0 {
		if o, err = G.Add(o, G.NewConstant(float32(lo))); err != nil {
			return nil, fmt.Errorf("generator output shift: %w", err)
		}
	}
	return o, nil
}

// dense computes x*w + b with b (1 x out) broadcast over the rows of x.
func dense(x, w, b *G.Node) (*G.Node, error) {
	xw, err := G.Mul(x, w)
	if err != nil {
		return nil, err
	}
	return G.BroadcastAdd(xw, b, nil, []byte{0})
}

func param(g *G.ExprGraph, name string, data []float32, rows, cols int) *G.Node {
	return G.NewMatrix(g, tensor.Float32, G.WithShape(rows, cols), G.WithName(name),
		G.WithValue(tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(data))))
}

func gaussian(r *rand.Rand, n int, std float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64() * std)
	}
	return out
}
