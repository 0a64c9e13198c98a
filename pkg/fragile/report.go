package fragile

import "github.com/fragile-operator/fragile-operator/pkg/contract"

// The reports and their results are defined once, in pkg/contract, which the controller
// reads without linking this package; these names keep them at hand for the ML side.
type (
	Result          = contract.Result
	VerifyReport    = contract.VerifyReport
	WatermarkResult = contract.WatermarkResult
	WatermarkReport = contract.WatermarkReport
)

const (
	ResultIntact       = contract.ResultIntact
	ResultTampered     = contract.ResultTampered
	ResultError        = contract.ResultError
	WatermarkSucceeded = contract.WatermarkSucceeded
	WatermarkFailed    = contract.WatermarkFailed
)

// Progress is reported by Watermark after each optimisation step.
type Progress struct {
	Step     int     // steps done so far
	MaxSteps int     // step budget
	Loss     float64 // loss of the step just taken
	KeyMatch float64 // fraction of triggers whose top-1 label equals the key label
	// LearningRate is the generator's step size for the next step (it falls when
	// the key match stalls).
	LearningRate float64
}
