package attack

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// NoiseOptions describe Gaussian weight noise.
type NoiseOptions struct {
	// Sigma is the noise standard deviation: absolute, or, when Relative is set, a
	// fraction of each weight tensor's own standard deviation.
	Sigma    float64
	Relative bool
}

// Noise adds independent Gaussian noise to every FLOAT initializer of the model and
// returns the new file. r supplies every draw.
func Noise(model []byte, opts NoiseOptions, r *rand.Rand) ([]byte, error) {
	if !(opts.Sigma > 0) || math.IsInf(opts.Sigma, 0) {
		return nil, fmt.Errorf("noise sigma %g: must be a positive number", opts.Sigma)
	}
	m, err := onnx.Decode(model)
	if err != nil {
		return nil, err
	}
	values := map[string][]float32{}
	for _, t := range m.Graph.Initializers {
		if t.DataType != onnx.DataTypeFloat || len(t.Float) == 0 {
			continue
		}
		sigma := opts.Sigma
		if opts.Relative {
			sigma *= StdDev(t.Float)
		}
		noisy := make([]float32, len(t.Float))
		for i, w := range t.Float {
			noisy[i] = w + float32(r.NormFloat64()*sigma)
		}
		values[t.Name] = noisy
	}
	return onnx.ReplaceInitializers(model, values)
}

// StdDev is the population standard deviation of v.
func StdDev(v []float32) float64 {
	var mean float64
	for _, x := range v {
		mean += float64(x)
	}
	mean /= float64(len(v))
	var ss float64
	for _, x := range v {
		d := float64(x) - mean
		ss += d * d
	}
	return math.Sqrt(ss / float64(len(v)))
}
