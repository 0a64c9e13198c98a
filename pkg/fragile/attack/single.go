package attack

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/prune"
)

// WeightChange records the one weight SingleWeight changed.
type WeightChange struct {
	Tensor   string // initializer name
	Index    int    // element index, row-major
	Old, New float32
}

// SingleWeight changes one weight of the model by the given relative amount: it draws
// an element uniformly from every non-zero weight and bias element (BatchNormalization
// parameters excluded, as for Prune) and a sign, and multiplies the element by
// 1 + sign*relative. It is the smallest tampering there is: most single weights feed
// few units, so the detection rate over many draws, not one result, measures a
// watermark. r supplies every draw.
func SingleWeight(model []byte, relative float64, r *rand.Rand) ([]byte, WeightChange, error) {
	if !(relative > 0) || math.IsInf(relative, 0) {
		return nil, WeightChange{}, fmt.Errorf("single-weight change %g: must be a positive fraction", relative)
	}
	m, err := onnx.Decode(model)
	if err != nil {
		return nil, WeightChange{}, err
	}
	tensors := prune.Weights(m)
	nonZero := 0
	for _, t := range tensors {
		for _, v := range t.Float {
			if v != 0 {
				nonZero++
			}
		}
	}
	if nonZero == 0 {
		return nil, WeightChange{}, errors.New("single-weight change: the model has no non-zero weight")
	}
	// Draw the k-th non-zero element, so a zero weight (which a relative change
	// leaves as it is) is never picked and one draw always suffices.
	k := r.IntN(nonZero)
	sign := 1.0
	if r.IntN(2) == 0 {
		sign = -1
	}
	for _, t := range tensors {
		for i, v := range t.Float {
			if v == 0 {
				continue
			}
			if k > 0 {
				k--
				continue
			}
			changed := append([]float32(nil), t.Float...)
			changed[i] = float32(float64(v) * (1 + sign*relative))
			c := WeightChange{Tensor: t.Name, Index: i, Old: v, New: changed[i]}
			if c.New == c.Old {
				return nil, c, fmt.Errorf("single-weight change %g of %s[%d] = %g is below float32 resolution", relative, t.Name, i, v)
			}
			out, err := onnx.ReplaceInitializers(model, map[string][]float32{t.Name: changed})
			return out, c, err
		}
	}
	panic("unreachable: k < nonZero")
}
