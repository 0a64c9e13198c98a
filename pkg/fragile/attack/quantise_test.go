package attack

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/train"
)

// decode decodes a model or fails the test.
func decode(t *testing.T, model []byte) *onnx.Model {
	t.Helper()
	m, err := onnx.Decode(model)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestInt8 quantises LeNet-5 (Conv and Gemm weights): every weight moves by at most
// half its tensor's scale, lands on an integer multiple of the scale within +-127,
// the largest magnitude survives exactly, and the biases are untouched.
func TestInt8(t *testing.T) {
	model := onnx.Encode(train.LeNet5(rand.New(rand.NewPCG(11, 12))))
	before := decode(t, model)
	// The untrained biases are zero: give them values so "untouched" means something.
	biases := map[string][]float32{}
	r := rand.New(rand.NewPCG(13, 14))
	for _, w := range before.Graph.Initializers {
		if len(w.Dims) == 1 {
			b := make([]float32, len(w.Float))
			for i := range b {
				b[i] = float32(r.NormFloat64() * 0.1)
			}
			biases[w.Name] = b
		}
	}
	model, err := onnx.ReplaceInitializers(model, biases)
	if err != nil {
		t.Fatal(err)
	}
	before = decode(t, model)
	quantised, err := Int8(model)
	if err != nil {
		t.Fatal(err)
	}
	after := decode(t, quantised)
	weights := 0
	for _, w := range before.Graph.Initializers {
		got := after.Graph.Initializer(w.Name).Float
		if _, bias := biases[w.Name]; bias {
			if !slices.Equal(got, w.Float) {
				t.Errorf("bias %s changed", w.Name)
			}
			continue
		}
		weights++
		scale := Int8Scale(w.Float)
		changed, worst := 0, 0.0
		for i, v := range w.Float {
			d := math.Abs(float64(got[i]) - float64(v))
			worst = math.Max(worst, d)
			// Half the scale, plus float32 rounding of the result.
			if d > scale/2*(1+1e-6)+1e-7*math.Abs(float64(v)) {
				t.Errorf("%s[%d]: %g became %g, %g away, more than scale/2 = %g", w.Name, i, v, got[i], d, scale/2)
			}
			q := float64(got[i]) / scale
			if math.Abs(q-math.Round(q)) > 1e-4 || math.Abs(q) > 127+1e-4 {
				t.Errorf("%s[%d] = %g is %g scales, not an integer in [-127, 127]", w.Name, i, got[i], q)
			}
			if got[i] != v {
				changed++
			}
		}
		largest := slices.MaxFunc(w.Float, func(a, b float32) int {
			return cmpAbs(a, b)
		})
		if i := slices.Index(w.Float, largest); got[i] != largest {
			t.Errorf("%s: its largest weight %g became %g; it maps to 127 exactly", w.Name, largest, got[i])
		}
		t.Logf("%s: %d values, scale %.3g, %d changed, worst error %.3g (%.2f scales)", w.Name, len(w.Float), scale, changed, worst, worst/scale)
		if changed < len(w.Float)/2 {
			t.Errorf("%s: only %d of %d weights changed; random weights are almost never on the int8 grid", w.Name, changed, len(w.Float))
		}
	}
	if weights != 5 {
		t.Errorf("quantised %d weight tensors, LeNet-5 has 5 (2 Conv, 3 Gemm)", weights)
	}
}

func cmpAbs(a, b float32) int {
	x, y := math.Abs(float64(a)), math.Abs(float64(b))
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// TestInt8ScaleMapsTheLargestTo127 checks the scale on a hand-made tensor.
func TestInt8ScaleMapsTheLargestTo127(t *testing.T) {
	w := []float32{0.5, -1.27, 0.001, 0}
	if got := Int8Scale(w); math.Abs(got-0.01) > 1e-9 {
		t.Errorf("scale %g, want 1.27/127 = 0.01", got)
	}
	q, err := Int8(onnx.Encode(&onnx.Model{
		IRVersion: 7, Opsets: map[string]int64{"": 13},
		Graph: onnx.Graph{
			Nodes:        []onnx.Node{{OpType: "MatMul", Inputs: []string{"x", "w"}, Outputs: []string{"y"}}},
			Initializers: []onnx.Tensor{{Name: "w", Dims: []int64{4, 1}, DataType: onnx.DataTypeFloat, Float: w}},
			Inputs:       []onnx.ValueInfo{{Name: "x", ElemType: onnx.DataTypeFloat, Dims: []onnx.Dim{{Value: 1}, {Value: 4}}}},
			Outputs:      []onnx.ValueInfo{{Name: "y", ElemType: onnx.DataTypeFloat, Dims: []onnx.Dim{{Value: 1}, {Value: 1}}}},
		},
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{0.5, -1.27, 0, 0} // 0.001 is a tenth of a step: rounds to zero
	if got := weights(t, q); !slices.Equal(got, want) {
		t.Errorf("quantised %v, want %v", got, want)
	}
}
