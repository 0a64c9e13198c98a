package fragile

import (
	"math"
	"strings"
	"testing"
)

func TestNormalizationResolve(t *testing.T) {
	three := Normalization{Mean: []float64{0.4914, 0.4822, 0.4465}, Std: []float64{0.2471, 0.2435, 0.2616}}
	tests := map[string]struct {
		n     Normalization
		shape []int
		axis  int
		err   string
	}{
		"NCHW":              {n: three, shape: []int{3, 32, 32}, axis: 0},
		"NHWC":              {n: three, shape: []int{32, 32, 3}, axis: 2},
		"one for all":       {n: Normalization{Mean: []float64{0.5}, Std: []float64{0.25}}, shape: []int{32, 32, 3}, axis: 0},
		"none":              {n: Normalization{}, shape: []int{1, 28, 28}, axis: 0},
		"channels mismatch": {n: three, shape: []int{1, 28, 28}, err: "has 1 values on its first axis and 28 on its last"},
		"counts differ":     {n: Normalization{Mean: []float64{0, 0, 0}, Std: []float64{1}}, shape: []int{3, 2, 2}, err: "3 means and 1 standard deviations"},
		"zero std":          {n: Normalization{Mean: []float64{0}, Std: []float64{0}}, shape: []int{3, 2, 2}, err: "must be positive"},
		"NaN mean":          {n: Normalization{Mean: []float64{math.NaN()}, Std: []float64{1}}, shape: []int{3, 2, 2}, err: "both finite"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := tt.n.resolve(tt.shape)
			switch {
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("error %v, want one containing %q", err, tt.err)
			case tt.err == "" && err != nil:
				t.Fatal(err)
			case tt.err == "" && got.Axis != tt.axis:
				t.Errorf("axis %d, want %d", got.Axis, tt.axis)
			}
		})
	}
}

// TestNormalizerChannels checks that every element is normalised with its own
// channel's mean and deviation, in both layouts, and that gradients pull back by 1/std.
func TestNormalizerChannels(t *testing.T) {
	n := Normalization{Mean: []float64{0.25, 0.5}, Std: []float64{0.5, 0.125}}
	for name, tt := range map[string]struct {
		shape   []int
		channel func(e int) int // channel of element e of one example
	}{
		"NCHW": {shape: []int{2, 3, 2}, channel: func(e int) int { return e / 6 }},
		"NHWC": {shape: []int{3, 2, 2}, channel: func(e int) int { return e % 2 }},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := n.resolve(tt.shape)
			if err != nil {
				t.Fatal(err)
			}
			norm := newNormalizer(r, tt.shape)
			pixels := make([]float32, 2*12) // two examples
			for i := range pixels {
				pixels[i] = float32(i%7) / 8
			}
			out := norm.apply(pixels)
			grad := make([]float64, len(pixels))
			for i := range grad {
				grad[i] = 1
			}
			norm.pullBack(grad)
			for i, v := range pixels {
				c := tt.channel(i % 12)
				want := (float64(v) - n.Mean[c]) / n.Std[c]
				if math.Abs(float64(out[i])-want) > 1e-6 {
					t.Errorf("element %d (channel %d): %g, want %g", i, c, out[i], want)
				}
				if math.Abs(grad[i]-1/n.Std[c]) > 1e-6 {
					t.Errorf("element %d: gradient %g, want %g", i, grad[i], 1/n.Std[c])
				}
			}
			a, b, ok := norm.affine()
			if !ok {
				t.Fatal("no affine form")
			}
			for e := range a {
				if d := math.Abs(float64(a[e]*pixels[e] + b[e] - out[e])); d > 1e-5 {
					t.Errorf("element %d: the affine form differs from apply by %g", e, d)
				}
			}
		})
	}
}
