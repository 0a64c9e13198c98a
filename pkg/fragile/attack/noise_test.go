package attack_test

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gonum.org/v1/gonum/stat"

	"github.com/fragile-operator/fragile-operator/internal/onnxtest"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/attack"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// sigmaTol is the allowed relative error of a measured noise standard deviation.
// With n = 200,000 draws the sample standard deviation has a relative spread of
// 1/sqrt(2n) = 0.16%, so 5% is about 30 spreads away.
const sigmaTol = 0.05

// bigModel has two large weight tensors (200,000 values each) with very different
// spreads (1 and 0.01), a small one and an INT64 shape.
func bigModel() []byte {
	b := onnxtest.NewBuilder(rand.New(rand.NewPCG(71, 72)), "x", -1, 400)
	h := b.Node("MatMul", []string{b.Last(), b.Weight("wide", 0, 1, 400, 500)})
	h = b.Node("Reshape", []string{h, b.Ints("shape", 0, -1)})
	h = b.Node("MatMul", []string{h, b.Weight("narrow", 3, 0.01, 500, 400)})
	b.Node("Add", []string{h, b.Weight("bias", 0, 1, 400)})
	return onnx.Encode(b.Model(-1, 400))
}

func deltas(t *testing.T, before, after *onnx.Model, name string) []float64 {
	t.Helper()
	x, y := before.Graph.Initializer(name), after.Graph.Initializer(name)
	if x == nil || y == nil || len(x.Float) != len(y.Float) {
		t.Fatalf("initializer %s missing or resized", name)
	}
	d := make([]float64, len(x.Float))
	for i := range d {
		d[i] = float64(y.Float[i]) - float64(x.Float[i])
	}
	return d
}

func TestNoise(t *testing.T) {
	model := bigModel()
	orig, err := onnx.Decode(model)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		opts attack.NoiseOptions
		// want is the standard deviation the noise on each large tensor must have.
		want map[string]float64
	}{
		"absolute": {attack.NoiseOptions{Sigma: 0.01}, map[string]float64{"wide": 0.01, "narrow": 0.01}},
		"relative": {attack.NoiseOptions{Sigma: 0.1, Relative: true}, map[string]float64{
			"wide":   0.1 * attack.StdDev(orig.Graph.Initializer("wide").Float),
			"narrow": 0.1 * attack.StdDev(orig.Graph.Initializer("narrow").Float),
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, err := attack.Noise(model, tc.opts, rand.New(rand.NewPCG(73, 74)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := onnx.Decode(out)
			if err != nil {
				t.Fatal(err)
			}
			for tensor, sigma := range tc.want {
				d := deltas(t, orig, got, tensor)
				mean, std := stat.PopMeanStdDev(d, nil)
				t.Logf("%s: %d values, noise mean %.3g std %.4g (want %.4g)", tensor, len(d), mean, std, sigma)
				if math.Abs(std-sigma) > sigmaTol*sigma {
					t.Errorf("%s: noise std %g, want %g within %g%%", tensor, std, sigma, 100*sigmaTol)
				}
				// Zero mean: the sample mean's spread is sigma/sqrt(n); allow 6 of them.
				if math.Abs(mean) > 6*sigma/math.Sqrt(float64(len(d))) {
					t.Errorf("%s: noise mean %g", tensor, mean)
				}
			}
			if d := deltas(t, orig, got, "bias"); slices.Equal(d, make([]float64, len(d))) {
				t.Error("the small bias got no noise")
			}
			// The graph and the INT64 shape are untouched.
			o2, g2 := *orig, *got
			o2.Graph.Initializers, g2.Graph.Initializers = nil, nil
			if diff := cmp.Diff(&o2, &g2, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("the graph changed:\n%s", diff)
			}
			if s := got.Graph.Initializer("shape"); s == nil || !slices.Equal(s.Int64, []int64{0, -1}) {
				t.Errorf("the INT64 shape changed: %+v", s)
			}
		})
	}
}

func TestNoiseIsSeeded(t *testing.T) {
	model := bigModel()
	opts := attack.NoiseOptions{Sigma: 1e-3}
	a, err := attack.Noise(model, opts, rand.New(rand.NewPCG(75, 76)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := attack.Noise(model, opts, rand.New(rand.NewPCG(75, 76)))
	c, _ := attack.Noise(model, opts, rand.New(rand.NewPCG(75, 77)))
	if !bytes.Equal(a, b) {
		t.Error("one seed gave two different models")
	}
	if bytes.Equal(a, c) || bytes.Equal(a, model) {
		t.Error("another seed gave the same model, or the model did not change")
	}
}

func TestNoiseRejects(t *testing.T) {
	model := bigModel()
	r := rand.New(rand.NewPCG(78, 79))
	for _, sigma := range []float64{0, -1e-3, math.NaN(), math.Inf(1)} {
		for _, rel := range []bool{false, true} {
			if out, err := attack.Noise(model, attack.NoiseOptions{Sigma: sigma, Relative: rel}, r); err == nil {
				t.Errorf("sigma %g (relative %v): no error, %d bytes", sigma, rel, len(out))
			}
		}
	}
	if _, err := attack.Noise([]byte("not a model"), attack.NoiseOptions{Sigma: 1}, r); err == nil {
		t.Error("noise on garbage: no error")
	}
}

func TestStdDev(t *testing.T) {
	tests := []struct {
		v    []float32
		want float64
	}{
		{[]float32{1, 2, 3, 4}, math.Sqrt(1.25)}, // population, not sample, deviation
		{[]float32{5}, 0},
		{[]float32{-2, 2}, 2},
		{[]float32{1e6 + 1, 1e6 - 1}, 1},
	}
	for _, tc := range tests {
		if got := attack.StdDev(tc.v); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("StdDev(%v) = %g, want %g", tc.v, got, tc.want)
		}
	}
}
