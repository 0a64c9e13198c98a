// Package prune zeroes the smallest-magnitude weights of an ONNX model: magnitude
// pruning, the commonest compression of a trained network. The evaluation's attack
// (pkg/fragile/attack) and the tie method's pruning probe (pkg/fragile) both call it,
// so the probe sees exactly the change the attack makes.
package prune

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// Smallest sets the fraction of smallest-magnitude values of every FLOAT initializer
// to zero (per tensor; ties broken by position so the result is deterministic) and
// returns the new file. BatchNormalization's scale, bias, mean and variance are not
// weights and are left alone (see Statistics).
func Smallest(model []byte, fraction float64) ([]byte, error) {
	if !(fraction > 0 && fraction < 1) {
		return nil, fmt.Errorf("prune fraction %g: must be between 0 and 1", fraction)
	}
	m, err := onnx.Decode(model)
	if err != nil {
		return nil, err
	}
	values := map[string][]float32{}
	for _, t := range Weights(m) {
		order := make([]int, len(t.Float))
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int {
			return cmp.Compare(math.Abs(float64(t.Float[a])), math.Abs(float64(t.Float[b])))
		})
		out := slices.Clone(t.Float)
		for _, i := range order[:int(math.Round(fraction*float64(len(out))))] {
			out[i] = 0
		}
		values[t.Name] = out
	}
	return onnx.ReplaceInitializers(model, values)
}

// Weights returns the non-empty FLOAT initializers of m that are weights or biases
// (not BatchNormalization's statistics), in file order: what pruning and the weight
// attacks change.
func Weights(m *onnx.Model) []*onnx.Tensor {
	skip := Statistics(m)
	var out []*onnx.Tensor
	for i := range m.Graph.Initializers {
		t := &m.Graph.Initializers[i]
		if t.DataType == onnx.DataTypeFloat && len(t.Float) > 0 && !skip[t.Name] {
			out = append(out, t)
		}
	}
	return out
}

// Statistics names BatchNormalization's scale, bias, mean and variance inputs:
// statistics of the training data rather than weights. A zeroed variance divides by
// sqrt(epsilon) and wrecks the model (1% pruning took a BatchNorm MLP from 84% to
// 29% test accuracy), which is not the quiet compression pruning stands for.
func Statistics(m *onnx.Model) map[string]bool {
	out := map[string]bool{}
	for _, node := range m.Graph.Nodes {
		if node.OpType == "BatchNormalization" {
			for _, in := range node.Inputs[min(1, len(node.Inputs)):] {
				out[in] = true
			}
		}
	}
	return out
}
