package fragile

import (
	"fmt"
	"math"
	"runtime"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/prune"
)

// Why a pruning probe: magnitude pruning zeroes the smallest weights, and a trigger
// sees that change only where those weights carry its margin. On a network trained
// with a strong sparsity pressure they are tiny (oval21__cifar_wide_kw: the smallest
// 1% of each tensor is below 2.3e-6, most below 1e-8), so at triggers placed with no
// regard for them 1% pruning moved no margin by more than 4% of itself and flipped
// none of 100 (BENCHMARKS.md, issue 11). The tie refinement therefore steers each tied
// trigger, inside the null space of its tie equations, towards points where the probe
// model (the frozen model with its smallest weights zeroed, as magnitude pruning
// leaves it) lowers the key label against a competitor: the change pruning makes is
// then as large as the trigger can make it, while the trigger stays tied.

// PruningProbeFraction is the fraction of each weight tensor the probe model zeroes
// when the probe is on (WatermarkOptions.PruneProbe; off by default, see
// PruningNoiseMargin): the 1% magnitude pruning of the evaluation. The smaller
// prunings zero a subset of it.
const PruningProbeFraction = 0.01

// probeIterations is how many iterations refineToTie adds to its tieIterations for
// the probe's ascent; probeCorrections bounds the Newton steps that take a trigger
// back to a tie after an ascent step.
const (
	probeIterations  = 12
	probeCorrections = 3
)

// Steering step, root mean square per input value, relative to the input range: the
// first, the largest, and the factors it grows by after an accepted step and shrinks
// by after a rejected one.
const (
	probeStep       = 0.02
	probeStepMax    = 0.1
	probeStepGrow   = 1.5
	probeStepShrink = 0.5
)

// probe is the probe model on the refinement's batch: float64 logits, to measure
// how far pruning moves each margin, and input gradients, to steer by.
type probe struct {
	r64 logitRunner
	jac *nn.InputGradient
}

// newProbe compiles model with the fraction of smallest-magnitude values of each of
// its weight tensors zeroed, for batch examples; perExample (the model's activation
// bytes per example, as target counts them) bounds its gradient graphs as the tie's.
func newProbe(model []byte, fraction float64, batch int, perExample int64) (*probe, error) {
	pruned, err := prune.Smallest(model, fraction)
	if err != nil {
		return nil, fmt.Errorf("pruning probe: %w", err)
	}
	net, err := LoadNetwork(pruned)
	if err != nil {
		return nil, fmt.Errorf("pruning probe: %w", err)
	}
	r64, err := newRunner(net.Model(), net, batch, true)
	if err != nil {
		return nil, fmt.Errorf("pruning probe: %w", err)
	}
	jac, err := nn.NewInputGradientShards(net, batch, runtime.GOMAXPROCS(0), maxShardExamples(perExample))
	if err != nil {
		r64.Close()
		return nil, fmt.Errorf("pruning probe: %w", err)
	}
	return &probe{r64: r64, jac: jac}, nil
}

// Close releases the probe's runner and gradient machine.
func (p *probe) Close() {
	p.r64.Close()
	p.jac.Close()
}

// exposure is how far the probe model moves trigger i's margins towards a flip: the
// largest, over its competitors j, of the drop of z_label - z_j from the model to the
// probe, over z_label - z_j at the model (float64 logits of the trigger's row at
// each), and that competitor's position in competitors. A trigger the probe flips has
// an exposure above 1.
func exposure(row, probeRow []float64, label int, competitors []int) (float64, int) {
	best, at := math.Inf(-1), 0
	for p, j := range competitors {
		margin := row[label] - row[j]
		if d := (margin - (probeRow[label] - probeRow[j])) / margin; d > best {
			best, at = d, p
		}
	}
	return best, at
}
