package attack

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/train"
)

// TestSingleWeightChangesExactlyOneWeight draws 20 single-weight changes of the
// BatchNorm MLP from one seeded source: each changes exactly one element, by exactly
// 1% of its value, never a BatchNormalization parameter or a zero weight, and the
// draws spread over the network.
func TestSingleWeightChangesExactlyOneWeight(t *testing.T) {
	model := onnx.Encode(train.MLPBatchNorm(rand.New(rand.NewPCG(21, 22))))
	before := decode(t, model)
	r := rand.New(rand.NewPCG(23, 24))
	picked := map[string]int{}
	signs := map[bool]int{}
	for draw := range 20 {
		out, c, err := SingleWeight(model, 0.01, r)
		if err != nil {
			t.Fatal(err)
		}
		after := decode(t, out)
		diffs := 0
		for _, w := range before.Graph.Initializers {
			got := after.Graph.Initializer(w.Name).Float
			for i, v := range w.Float {
				if got[i] == v {
					continue
				}
				diffs++
				if w.Name != c.Tensor || i != c.Index || v != c.Old || got[i] != c.New {
					t.Errorf("draw %d: %s[%d] changed %g -> %g, reported %+v", draw, w.Name, i, v, got[i], c)
				}
			}
		}
		if diffs != 1 {
			t.Errorf("draw %d: %d elements changed, want exactly 1", draw, diffs)
		}
		if rel := float64(c.New)/float64(c.Old) - 1; math.Abs(math.Abs(rel)-0.01) > 1e-6 {
			t.Errorf("draw %d: %s[%d] changed by %.6f of its value, want +-0.01", draw, c.Tensor, c.Index, rel)
		}
		if c.Old == 0 || strings.HasPrefix(c.Tensor, "bn.") {
			t.Errorf("draw %d picked %s[%d] = %g: zero weights and BatchNorm parameters are excluded", draw, c.Tensor, c.Index, c.Old)
		}
		picked[c.Tensor]++
		signs[c.New > c.Old == (c.Old > 0)]++
	}
	t.Logf("tensors drawn: %v; increases/decreases of magnitude: %v", picked, signs)
	// fc1.weight holds 100,352 of the ~101,800 non-zero elements (biases start at zero).
	if picked["fc1.weight"] < 15 {
		t.Errorf("fc1.weight, 98.6%% of the elements, drawn %d of 20 times", picked["fc1.weight"])
	}
	if signs[true] == 0 || signs[false] == 0 {
		t.Errorf("20 draws all moved the weight the same way: %v", signs)
	}
}

func TestSingleWeightIsSeeded(t *testing.T) {
	model := onnx.Encode(train.MLP(rand.New(rand.NewPCG(25, 26))))
	a, ca, err := SingleWeight(model, 0.01, rand.New(rand.NewPCG(27, 28)))
	if err != nil {
		t.Fatal(err)
	}
	b, cb, _ := SingleWeight(model, 0.01, rand.New(rand.NewPCG(27, 28)))
	c, cc, _ := SingleWeight(model, 0.01, rand.New(rand.NewPCG(27, 29)))
	if !bytes.Equal(a, b) || ca != cb {
		t.Errorf("one seed gave two changes: %+v and %+v", ca, cb)
	}
	if bytes.Equal(a, c) || ca == cc {
		t.Errorf("two seeds gave the same change %+v", ca)
	}
}

func TestSingleWeightRejects(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, rel := range []float64{0, -0.01, math.NaN(), math.Inf(1)} {
		if _, _, err := SingleWeight(weightModel([]float32{1, 2}), rel, r); err == nil {
			t.Errorf("relative change %g: no error", rel)
		}
	}
	if _, _, err := SingleWeight(weightModel([]float32{0, 0}), 0.01, r); err == nil || !strings.Contains(err.Error(), "no non-zero weight") {
		t.Errorf("all-zero model: %v, want an error saying there is no non-zero weight", err)
	}
}
