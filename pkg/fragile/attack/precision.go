package attack

import (
	"math"

	"github.com/x448/float16"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/prune"
)

// Prune sets the fraction of smallest-magnitude weights of every FLOAT initializer
// to zero (magnitude pruning, per tensor; ties broken by position so the result is
// deterministic) and returns the new file. BatchNormalization's scale, bias, mean
// and variance are not weights and are left alone (prune.Statistics).
func Prune(model []byte, fraction float64) ([]byte, error) {
	return prune.Smallest(model, fraction)
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

// Int8 quantises the weights of every Conv, Gemm and MatMul to eight bits and back,
// per tensor and symmetric, as post-training quantisation does: scale = max|w|/127,
// w -> round(w/scale)*scale, so each weight moves by at most scale/2. Biases and
// BatchNormalization parameters stay float32: int8 runtimes keep biases in int32 at
// the product of the input and weight scales, far finer than the weights' grid.
func Int8(model []byte) ([]byte, error) {
	m, err := onnx.Decode(model)
	if err != nil {
		return nil, err
	}
	weights := multiplicativeWeights(m)
	return mapWeightsOf(m, model, func(name string) bool { return weights[name] }, func(w []float32) []float32 {
		scale := Int8Scale(w)
		out := make([]float32, len(w))
		if scale == 0 {
			return out // every weight is zero: nothing to quantise
		}
		for i, v := range w {
			out[i] = float32(math.Round(float64(v)/scale) * scale)
		}
		return out
	})
}

// Int8Scale is the per-tensor symmetric int8 scale of w: its largest magnitude over
// 127, so that the largest weight maps to +-127 exactly.
func Int8Scale(w []float32) float64 {
	largest := 0.0
	for _, v := range w {
		largest = math.Max(largest, math.Abs(float64(v)))
	}
	return largest / 127
}

// mapWeights replaces every non-empty FLOAT initializer with fn of its values.
func mapWeights(model []byte, fn func([]float32) []float32) ([]byte, error) {
	m, err := onnx.Decode(model)
	if err != nil {
		return nil, err
	}
	return mapWeightsOf(m, model, func(string) bool { return true }, fn)
}

// mapWeightsOf replaces the non-empty FLOAT initializers of m (decoded from model)
// that selected accepts by name with fn of their values.
func mapWeightsOf(m *onnx.Model, model []byte, selected func(name string) bool, fn func([]float32) []float32) ([]byte, error) {
	values := map[string][]float32{}
	for _, t := range m.Graph.Initializers {
		if t.DataType == onnx.DataTypeFloat && len(t.Float) > 0 && selected(t.Name) {
			values[t.Name] = fn(t.Float)
		}
	}
	return onnx.ReplaceInitializers(model, values)
}
