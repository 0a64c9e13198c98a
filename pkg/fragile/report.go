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

// Progress is reported by Watermark after each generator training step and each
// iteration of the tie refinement, which on a large model takes most of the time.
type Progress struct {
	Phase    Phase
	Step     int     // steps (iterations) done so far in this phase
	MaxSteps int     // the phase's budget
	Loss     float64 // training: loss of the step just taken
	KeyMatch float64 // fraction of triggers whose top-1 label equals the key label
	Tied     float64 // refinement: fraction of triggers at a tie of their competitors
	// LearningRate is the generator's step size for the next training step (it
	// falls when the key match stalls).
	LearningRate float64
}

// Phase names a stage of Watermark.
type Phase string

const (
	// PhaseTraining trains the keyed generator until every trigger has its key label.
	PhaseTraining Phase = "training"
	// PhaseRefinement moves the labelled triggers to ties (MethodTie).
	PhaseRefinement Phase = "refinement"
)
