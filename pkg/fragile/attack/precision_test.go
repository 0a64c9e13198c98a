package attack

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/train"
)

// weightModel encodes a one-node model whose single weight tensor holds w.
func weightModel(w []float32) []byte {
	return onnx.Encode(&onnx.Model{
		IRVersion: 7,
		Opsets:    map[string]int64{"": 13},
		Graph: onnx.Graph{
			Nodes: []onnx.Node{{OpType: "MatMul", Inputs: []string{"x", "w"}, Outputs: []string{"y"}}},
			Initializers: []onnx.Tensor{
				{Name: "w", Dims: []int64{int64(len(w)), 1}, DataType: onnx.DataTypeFloat, Float: w},
			},
			Inputs:  []onnx.ValueInfo{{Name: "x", ElemType: onnx.DataTypeFloat, Dims: []onnx.Dim{{Value: 1}, {Value: int64(len(w))}}}},
			Outputs: []onnx.ValueInfo{{Name: "y", ElemType: onnx.DataTypeFloat, Dims: []onnx.Dim{{Value: 1}, {Value: 1}}}},
		},
	})
}

func weights(t *testing.T, model []byte) []float32 {
	t.Helper()
	m, err := onnx.Decode(model)
	if err != nil {
		t.Fatal(err)
	}
	return m.Graph.Initializer("w").Float
}

// TestPruneZeroesTheSmallestFraction prunes 10,000 Gaussian weights at the two
// fractions the evaluation uses: exactly 10 and 100 weights become zero, the
// smallest ones, and no other weight moves.
func TestPruneZeroesTheSmallestFraction(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	w := make([]float32, 10000)
	for i := range w {
		w[i] = float32(r.NormFloat64())
	}
	for _, tc := range []struct {
		fraction float64
		want     int
	}{{0.001, 10}, {0.01, 100}} {
		pruned, err := Prune(weightModel(w), tc.fraction)
		if err != nil {
			t.Fatal(err)
		}
		got := weights(t, pruned)
		zeroed, changed := 0, 0
		var largestZeroed, smallestKept float64 = 0, math.Inf(1)
		for i := range w {
			if got[i] == 0 {
				zeroed++
				largestZeroed = math.Max(largestZeroed, math.Abs(float64(w[i])))
			} else {
				smallestKept = math.Min(smallestKept, math.Abs(float64(got[i])))
			}
			if got[i] != w[i] && got[i] != 0 {
				changed++
			}
		}
		if zeroed != tc.want {
			t.Errorf("fraction %g: zeroed %d of %d weights, want %d", tc.fraction, zeroed, len(w), tc.want)
		}
		if changed != 0 {
			t.Errorf("fraction %g: %d kept weights changed value", tc.fraction, changed)
		}
		if largestZeroed > smallestKept {
			t.Errorf("fraction %g: pruned a weight of magnitude %g while keeping one of %g", tc.fraction, largestZeroed, smallestKept)
		}
	}
}

func TestFloat16RoundsToHalfPrecision(t *testing.T) {
	w := []float32{1, 0.1, 1e-8, 65504, 3.14159265, -2.5e-3}
	half, err := Float16(weightModel(w))
	if err != nil {
		t.Fatal(err)
	}
	got := weights(t, half)
	for i, v := range w {
		// float16 keeps 11 significant bits: relative error at most 2^-11 for normal
		// numbers; values below the subnormal range flush towards zero.
		if math.Abs(float64(v)) > 6.1e-5 && math.Abs(float64(got[i]-v)) > math.Abs(float64(v))/2048 {
			t.Errorf("%g became %g, more than half a float16 ulp away", v, got[i])
		}
		if math.Abs(float64(v)) < 6e-8 && got[i] != 0 {
			t.Errorf("%g is below float16's range but became %g", v, got[i])
		}
	}
	if got[1] == w[1] {
		t.Errorf("0.1 is not representable in float16 but was kept exactly")
	}
}

func TestAttacksRejectBadParameters(t *testing.T) {
	m := weightModel([]float32{1, 2})
	for name, err := range map[string]error{
		"prune 0":  func() error { _, err := Prune(m, 0); return err }(),
		"prune 1":  func() error { _, err := Prune(m, 1); return err }(),
		"not onnx": func() error { _, err := Float16([]byte("not a model")); return err }(),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestPruneLeavesNormalisationAlone prunes the BatchNorm MLP: every weight and bias
// tensor loses its smallest 1%, BatchNormalization's four parameter tensors keep
// every value.
func TestPruneLeavesNormalisationAlone(t *testing.T) {
	model := onnx.Encode(train.MLPBatchNorm(rand.New(rand.NewPCG(3, 4))))
	pruned, err := Prune(model, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	before, err := onnx.Decode(model)
	if err != nil {
		t.Fatal(err)
	}
	after, err := onnx.Decode(pruned)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range before.Graph.Initializers {
		got := after.Graph.Initializer(w.Name).Float
		zeroed, zeroBefore := 0, 0
		for i := range w.Float {
			if got[i] == 0 && w.Float[i] != 0 {
				zeroed++
			}
			if w.Float[i] == 0 {
				zeroBefore++ // already among the smallest (biases start at zero)
			}
		}
		want := max(0, int(math.Round(0.01*float64(len(w.Float))))-zeroBefore)
		if strings.HasPrefix(w.Name, "bn.") {
			want = 0
		}
		if zeroed != want {
			t.Errorf("%s (%d values): %d zeroed, want %d", w.Name, len(w.Float), zeroed, want)
		}
	}
}
