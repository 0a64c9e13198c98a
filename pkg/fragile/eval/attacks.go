package eval

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/attack"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/train"
)

// Attack is one attack configuration of the protocol.
type Attack struct {
	Class    string  // finetune, poison, backdoor, noise, prune, fp16
	Label    string  // human-readable configuration
	Series   string  // plot series this configuration belongs to ("" = not plotted)
	Strength float64 // x coordinate in its series
	Unit     string  // what Strength measures, the plot's x axis
	// Deterministic attacks give the same model for every seed: run once.
	Deterministic bool
	// Draws, when set, replaces Config.Seeds for this attack: the single-weight
	// change is measured over many draws, its detection rate being the figure.
	Draws int
	Apply func(ctx context.Context, s *Subject, r *rand.Rand) ([]byte, error)
}

// Attacks returns the protocol's attack configurations; quick keeps one of each class.
func Attacks(quick bool) []Attack {
	var out []Attack
	steps := []int{1, 10, 100}
	optimizers := []train.Optimizer{train.SGD, train.Adam}
	rates := []float64{1e-4, 1e-3}
	if quick {
		steps, optimizers, rates = []int{10}, []train.Optimizer{train.Adam}, []float64{1e-3}
	}
	for _, opt := range optimizers {
		for _, lr := range rates {
			for _, n := range steps {
				opts := train.Options{Steps: n, LearningRate: lr, Optimizer: opt}
				out = append(out, Attack{
					Class: "finetune", Label: fmt.Sprintf("fine-tune %s lr %g, %d steps", opt, lr, n),
					Series: fmt.Sprintf("fine-tune %s lr %g", opt, lr), Strength: float64(n), Unit: "fine-tuning steps",
					Apply: func(ctx context.Context, s *Subject, r *rand.Rand) ([]byte, error) {
						return attack.FineTune(ctx, s.Model, attackData(s), opts, r)
					},
				})
			}
		}
	}
	// Adam adapts to the input scale: at SGD lr 1e-3, 100 steps on mnist-7's 0..255
	// inputs left it at 10-17% accuracy, which no attacker wants.
	trainOpts := train.Options{Steps: 100, LearningRate: 1e-4, Optimizer: train.Adam}
	out = append(out,
		Attack{Class: "poison", Label: "poison: 10% flipped labels, 100 Adam steps lr 1e-4",
			Apply: func(ctx context.Context, s *Subject, r *rand.Rand) ([]byte, error) {
				return attack.Poison(ctx, s.Model, attackData(s), 0.1, trainOpts, r)
			}},
		Attack{Class: "backdoor", Label: "backdoor: 3x3 patch -> class 0, 10%, 100 Adam steps lr 1e-4",
			Apply: func(ctx context.Context, s *Subject, r *rand.Rand) ([]byte, error) {
				bo := attack.BackdoorOptions{Patch: 3, Value: float32(s.InputMax), Target: 0, Fraction: 0.1, Width: s.Attack.Shape[len(s.Attack.Shape)-1]}
				return attack.Backdoor(ctx, s.Model, attackData(s), bo, trainOpts, r)
			}},
	)
	sigmas := []float64{1e-4, 5e-4, 1e-3}
	if quick {
		sigmas = []float64{5e-4}
	}
	for _, sigma := range sigmas {
		out = append(out, Attack{Class: "noise", Label: fmt.Sprintf("weight noise sigma %g", sigma), Series: "weight noise", Strength: sigma, Unit: "noise sigma",
			Apply: func(_ context.Context, s *Subject, r *rand.Rand) ([]byte, error) {
				return attack.Noise(s.Model, attack.NoiseOptions{Sigma: sigma}, r)
			}})
	}
	return append(out, weightAttacks(quick)...)
}

// weightAttacks are the attacks every subject gets that need no data: pruning, the
// float16 and int8 round trips and the single-weight change.
func weightAttacks(quick bool) []Attack {
	var out []Attack
	fractions := []float64{0.001, 0.01}
	draws := 20
	if quick {
		fractions, draws = []float64{0.01}, 5
	}
	for _, f := range fractions {
		out = append(out, Attack{Class: "prune", Label: fmt.Sprintf("magnitude pruning %g%%", 100*f), Deterministic: true,
			Series: "magnitude pruning", Strength: f, Unit: "fraction of each tensor pruned",
			Apply: func(_ context.Context, s *Subject, _ *rand.Rand) ([]byte, error) { return attack.Prune(s.Model, f) }})
	}
	return append(out,
		Attack{Class: "fp16", Label: "float16 round trip", Deterministic: true,
			Apply: func(_ context.Context, s *Subject, _ *rand.Rand) ([]byte, error) { return attack.Float16(s.Model) }},
		Attack{Class: "int8", Label: "int8 round trip (per-tensor symmetric)", Deterministic: true,
			Apply: func(_ context.Context, s *Subject, _ *rand.Rand) ([]byte, error) { return attack.Int8(s.Model) }},
		Attack{Class: "single-weight", Label: "one weight changed by 1%", Draws: draws,
			Apply: func(_ context.Context, s *Subject, r *rand.Rand) ([]byte, error) {
				out, _, err := attack.SingleWeight(s.Model, 0.01, r)
				return out, err
			}},
	)
}

// RealAttacks returns the attacks of the real CIFAR-10 models (issue 11): the weight
// attacks, and fine-tuning of every weight (1 and 10 steps) and of the last layer only
// (10 steps) on real CIFAR-10 images, Adam at lr 1e-4 in minibatches of 32: the
// 93-image attack half holds three of them. quick keeps 1% pruning, int8, five
// single-weight draws and one fine-tuning step.
func RealAttacks(quick bool) []Attack {
	opts := func(steps int) train.Options {
		return train.Options{Steps: steps, LearningRate: 1e-4, Optimizer: train.Adam, BatchSize: 32}
	}
	steps := []int{1, 10}
	if quick {
		steps = []int{1}
	}
	var out []Attack
	for _, n := range steps {
		out = append(out, Attack{Class: "finetune", Label: fmt.Sprintf("fine-tune Adam lr 1e-4, %d steps", n),
			Series: "fine-tune Adam lr 1e-4", Strength: float64(n), Unit: "fine-tuning steps",
			Apply: func(ctx context.Context, s *Subject, r *rand.Rand) ([]byte, error) {
				return attack.FineTune(ctx, s.Model, attackData(s), opts(n), r)
			}})
	}
	if !quick {
		out = append(out, Attack{Class: "last-layer", Label: "fine-tune the last layer only, Adam lr 1e-4, 10 steps",
			Apply: func(ctx context.Context, s *Subject, r *rand.Rand) ([]byte, error) {
				return attack.FineTuneLastLayer(ctx, s.Model, attackData(s), opts(10), r)
			}})
	}
	weights := weightAttacks(quick)
	if quick {
		weights = slices.DeleteFunc(weights, func(a Attack) bool { return a.Class == "fp16" })
	}
	return append(out, weights...)
}

func attackData(s *Subject) attack.Data {
	return attack.Data{Images: s.Attack.Images, Labels: s.Attack.Labels, Size: s.Attack.Size(), Classes: s.Attack.Classes}
}
