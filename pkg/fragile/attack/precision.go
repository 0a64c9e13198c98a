package attack

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/x448/float16"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// Prune sets the fraction of smallest-magnitude weights of every FLOAT initializer
// to zero (magnitude pruning, per tensor; ties broken by position so the result is
// deterministic) and returns the new file.
func Prune(model []byte, fraction float64) ([]byte, error) {
	if !(fraction > 0 && fraction < 1) {
		return nil, fmt.Errorf("prune fraction %g: must be between 0 and 1", fraction)
	}
	return mapWeights(model, func(w []float32) []float32 {
		order := make([]int, len(w))
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int {
			return cmp.Compare(math.Abs(float64(w[a])), math.Abs(float64(w[b])))
		})
		out := append([]float32(nil), w...)
		for _, i := range order[:int(math.Round(fraction*float64(len(w))))] {
			out[i] = 0
		}
		return out
	})
}

// Float16 rounds every FLOAT initializer to IEEE half precision and back, as a
// deployment that stores weights in float16 would.
func Float16(model []byte) ([]byte, error) {
	return mapWeights(model, func(w []float32) []float32 {
		out := make([]float32, len(w))
		for i, v := range w {
			out[i] = float16.Fromfloat32(v).Float32()
		}
		return out
	})
}

// mapWeights replaces every non-empty FLOAT initializer with fn of its values.
func mapWeights(model []byte, fn func([]float32) []float32) ([]byte, error) {
	m, err := onnx.Decode(model)
	if err != nil {
		return nil, err
	}
	values := map[string][]float32{}
	for _, t := range m.Graph.Initializers {
		if t.DataType == onnx.DataTypeFloat && len(t.Float) > 0 {
			values[t.Name] = fn(t.Float)
		}
	}
	return onnx.ReplaceInitializers(model, values)
}
