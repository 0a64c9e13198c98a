package conformance

import (
	"fmt"
	"math"
)

// The tolerance of every comparison: |got - want| <= Atol + Rtol*|want|.
const (
	Rtol = 1e-4
	Atol = 1e-5
)

// Compare checks got against want element by element at Rtol and Atol. NaN must
// meet NaN and an infinity the same infinity. The error names how many values are
// off and the worst one.
func Compare(got, want []float64) error { return CompareSlack(got, want, nil) }

// CompareSlack is Compare with the tolerance of value i widened by slack[i] (nil:
// none). The PyTorch fixtures use it to allow a float32 result the rounding error
// PyTorch's and onnxruntime's own float32 results show on the same value.
func CompareSlack(got, want, slack []float64) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d values computed, %d expected", len(got), len(want))
	}
	bad, worst, worstExcess := 0, -1, 0.0
	for i, w := range want {
		e := excess(got[i], w)
		if slack != nil {
			e -= slack[i]
		}
		if e > 0 {
			bad++
			if worst < 0 || e > worstExcess {
				worst, worstExcess = i, e
			}
		}
	}
	if bad == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d values outside rtol %g atol %g; worst at index %d: got %g, want %g",
		bad, len(want), Rtol, Atol, worst, got[worst], want[worst])
}

// excess is how far got lies outside the tolerance around want (<= 0: inside);
// +Inf when NaN or an infinity is not matched exactly.
func excess(got, want float64) float64 {
	switch {
	case math.IsNaN(want) || math.IsNaN(got):
		if math.IsNaN(want) && math.IsNaN(got) {
			return 0
		}
		return math.Inf(1)
	case math.IsInf(want, 0) || math.IsInf(got, 0):
		if got == want {
			return 0
		}
		return math.Inf(1)
	}
	return math.Abs(got-want) - (Atol + Rtol*math.Abs(want))
}
