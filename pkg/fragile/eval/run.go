package eval

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/stat"

	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/train"
)

// Runtime runs a bundle's triggers through an independent runtime and returns their
// (triggers x classes) logits, row-major.
type Runtime func(model []byte, b *fragile.Bundle) ([]float64, error)

// Config tunes Run.
type Config struct {
	Methods  []fragile.Method
	Triggers int // per bundle (default 100)
	Seeds    int // attacked models per configuration (default 3)
	Orders   int // random query orders per attacked model for first-flip queries (default 20)
	Key      fragile.Key
	// SecondRuntime, when set, is the independent-runtime benign control.
	SecondRuntime Runtime
	// SecondRuntimeName names it in the report.
	SecondRuntimeName string
	Log               io.Writer
}

// Row is one (subject, attack, method) cell of the result.
type Row struct {
	Subject, Method string
	Attack          Attack
	Models          int // attacked models (seeds)
	// Unchanged counts attacked models whose weights equal the original's: a
	// fine-tuning step on a minibatch the model already classifies with saturated
	// confidence has an exactly zero gradient. No method can or should flag those, so
	// the detection and change rates below count only the changed models.
	Unchanged  int
	Detected   int     // changed models with at least one flipped trigger
	ChangeRate float64 // mean fraction of flipped triggers over the changed models
	// FirstFlip is the mean number of triggers queried, in a random order, up to and
	// including the first flipped one, over all detected models and orders; FirstFlipSD
	// is its standard deviation. NaN when nothing was detected.
	FirstFlip, FirstFlipSD float64
	Accuracy               float64 // mean test accuracy of the attacked models
}

// Control is one benign control: an unmodified model that must verify intact. It
// also measures the noise floor the control adds to inference: how far its logits
// stray from the verification path's float32 logits.
type Control struct {
	Subject, Method, Control string
	Mismatched, Total        int
	Err                      string
	// Deviation is the largest |logit - reference logit| over every trigger and
	// class, in logits, comparable with the triggers' margins. (Relative to each
	// trigger's largest logit it would mislead: at a tie of every class, logits can
	// all sit near zero.)
	Deviation float64
	// MarginRatio is the smallest, over the triggers, of the trigger's reference
	// top-1/top-2 margin divided by twice its largest absolute logit deviation: above
	// 1, no trigger's label can differ between the two runs, because the key logit
	// and any competitor together moved by less than the margin. +Inf when nothing
	// deviated.
	MarginRatio float64
}

// Report is everything Run measured.
type Report struct {
	Subjects []*Subject
	Methods  []fragile.Method
	Rows     []Row
	Controls []Control
	// Margins holds the median top-1/top-2 margin of each subject's bundle per method.
	Margins map[string]map[fragile.Method]float64
	Config  Config
}

// Run executes the protocol: for every subject, one bundle per method; for every
// attack of the subject and seed, one attacked model verified against every bundle;
// and the benign controls. All randomness comes from seeds fixed here, so a run is
// repeatable.
func Run(ctx context.Context, subjects []*Subject, cfg Config) (*Report, error) {
	if cfg.Triggers == 0 {
		cfg.Triggers = 100
	}
	if cfg.Seeds == 0 {
		cfg.Seeds = 3
	}
	if cfg.Orders == 0 {
		cfg.Orders = 20
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	rep := &Report{Subjects: subjects, Methods: cfg.Methods, Config: cfg, Margins: map[string]map[fragile.Method]float64{}}
	for _, s := range subjects {
		bundles := map[fragile.Method]*fragile.Bundle{}
		rep.Margins[s.Name] = map[fragile.Method]float64{}
		for _, m := range cfg.Methods {
			b, err := fragile.Watermark(ctx, s.Model, cfg.Key, fragile.WatermarkOptions{
				Method: m, Triggers: cfg.Triggers, InputMax: s.InputMax, Natural: s.natural(), Normalization: s.Normalization,
			})
			if err != nil {
				return nil, fmt.Errorf("%s, method %s: %w", s.Name, m, err)
			}
			bundles[m] = b
			rep.Margins[s.Name][m] = medianOf32(b.Margins)
			fmt.Fprintf(cfg.Log, "%s: %s bundle, median margin %.3g\n", s.Name, m, rep.Margins[s.Name][m])
		}
		controls, err := runControls(s, bundles, cfg)
		if err != nil {
			return nil, err
		}
		rep.Controls = append(rep.Controls, controls...)

		for ai, a := range s.Attacks {
			seeds := cfg.Seeds
			switch {
			case a.Deterministic:
				seeds = 1
			case a.Draws > 0:
				seeds = a.Draws
			}
			rows := make([]Row, len(cfg.Methods))
			flips := make([][]float64, len(cfg.Methods))
			for i, m := range cfg.Methods {
				rows[i] = Row{Subject: s.Name, Method: string(m), Attack: a}
			}
			for seed := 0; seed < seeds; seed++ {
				r := rand.New(rand.NewPCG(uint64(ai)+1, uint64(seed)+1))
				attacked, err := a.Apply(ctx, s, r)
				if err != nil {
					return nil, fmt.Errorf("%s, %s: %w", s.Name, a.Label, err)
				}
				acc, err := train.Accuracy(attacked, s.Test.Images, s.Test.Labels)
				if err != nil {
					return nil, fmt.Errorf("%s, %s: %w", s.Name, a.Label, err)
				}
				same, err := sameWeights(s.Model, attacked)
				if err != nil {
					return nil, fmt.Errorf("%s, %s: %w", s.Name, a.Label, err)
				}
				net, err := fragile.LoadNetwork(attacked)
				if err != nil {
					return nil, err
				}
				for i, m := range cfg.Methods {
					rows[i].Models++
					rows[i].Accuracy += acc
					if same {
						rows[i].Unchanged++
						continue
					}
					b := bundles[m]
					labels, err := fragile.Predict(net, b.ModelInputs(), b.Len())
					if err != nil {
						return nil, err
					}
					flipped := mismatches(labels, b.KeyLabels)
					rows[i].ChangeRate += float64(count(flipped)) / float64(b.Len())
					if count(flipped) > 0 {
						rows[i].Detected++
						flips[i] = append(flips[i], firstFlips(flipped, cfg.Orders, rand.New(rand.NewPCG(uint64(seed), 99)))...)
					}
				}
			}
			for i := range rows {
				rows[i].Accuracy /= float64(rows[i].Models)
				if changed := rows[i].Models - rows[i].Unchanged; changed > 0 {
					rows[i].ChangeRate /= float64(changed)
				}
				rows[i].FirstFlip, rows[i].FirstFlipSD = meanSD(flips[i])
				fmt.Fprintf(cfg.Log, "%s | %s | %s: detected %d/%d changed models (%d unchanged), change rate %.2f, first flip %.1f, accuracy %.4f\n",
					s.Name, a.Label, rows[i].Method, rows[i].Detected, rows[i].Models-rows[i].Unchanged, rows[i].Unchanged, rows[i].ChangeRate, rows[i].FirstFlip, rows[i].Accuracy)
			}
			rep.Rows = append(rep.Rows, rows...)
		}
	}
	return rep, nil
}

// ControlBatch is the batch size of the batch-size control: a prime, so that with
// 100 triggers the last batch is partial and padded, as a serving system that
// batches requests would run them.
const ControlBatch = 7

// runControls verifies every bundle against benign variations of the unmodified
// model (the file re-serialised, float64 inference, a different batch size, and the
// second runtime) and measures how far each one's logits stray from the
// verification path's.
func runControls(s *Subject, bundles map[fragile.Method]*fragile.Bundle, cfg Config) ([]Control, error) {
	m, err := onnx.Decode(s.Model)
	if err != nil {
		return nil, err
	}
	// Each file is compiled once and serves every method's bundle; a re-serialised
	// file that does not load is that control's failure, not the run's.
	net, err := fragile.LoadNetwork(s.Model)
	if err != nil {
		return nil, err
	}
	reserialised, reserialisedErr := fragile.LoadNetwork(onnx.Encode(m))
	var out []Control
	for _, method := range cfg.Methods {
		b := bundles[method]
		reference, err := TriggerLogits(net, b, b.Len(), false)
		if err != nil {
			return nil, err
		}
		add := func(name string, logits []float64, err error) {
			c := Control{Subject: s.Name, Method: string(method), Control: name, Total: b.Len()}
			if err != nil {
				c.Err = err.Error()
			} else {
				labels, _ := nn.TopTwo(logits, b.Classes)
				c.Mismatched = count(mismatches(labels, b.KeyLabels))
				c.Deviation, c.MarginRatio = deviation(reference, logits, b.Classes)
			}
			out = append(out, c)
		}
		if reserialisedErr != nil {
			add("re-serialised file", nil, reserialisedErr)
		} else {
			logits, err := TriggerLogits(reserialised, b, b.Len(), false)
			add("re-serialised file", logits, err)
		}
		logits, err := TriggerLogits(net, b, b.Len(), true)
		add("float64 inference", logits, err)
		logits, err = TriggerLogits(net, b, ControlBatch, false)
		add(fmt.Sprintf("batches of %d", ControlBatch), logits, err)
		if cfg.SecondRuntime != nil {
			logits, err = cfg.SecondRuntime(s.Model, b)
			add(cfg.SecondRuntimeName, logits, err)
		}
	}
	return out, nil
}

// TriggerLogits runs the bundle's triggers through the network on the verification path,
// in float64 when double is set, batch triggers at a time (the last batch
// zero-padded).
func TriggerLogits(net *nn.Network, b *fragile.Bundle, batch int, double bool) ([]float64, error) {
	r, err := fragile.NewVerificationRunner(net, batch, double)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	size, inputs := b.InputSize(), b.ModelInputs()
	in := make([]float32, batch*size)
	var out []float64
	for start := 0; start < b.Len(); start += batch {
		n := min(batch, b.Len()-start)
		clear(in)
		copy(in, inputs[start*size:(start+n)*size])
		logits, err := r.Logits(in)
		if err != nil {
			return nil, err
		}
		out = append(out, logits[:n*b.Classes]...)
	}
	return out, nil
}

// deviation compares two runs' (rows x classes) logits: the largest absolute
// difference, and the smallest ratio of a row's reference top-1/top-2 margin to
// twice its largest absolute difference (see Control.MarginRatio).
func deviation(reference, other []float64, classes int) (largest, marginRatio float64) {
	_, margins := nn.TopTwo(reference, classes)
	marginRatio = math.Inf(1)
	for i, margin := range margins {
		worst := 0.0
		for j := i * classes; j < (i+1)*classes; j++ {
			worst = math.Max(worst, math.Abs(other[j]-reference[j]))
		}
		largest = math.Max(largest, worst)
		if worst > 0 {
			marginRatio = math.Min(marginRatio, margin/(2*worst))
		}
	}
	return largest, marginRatio
}

func mismatches(labels, key []int) []bool {
	out := make([]bool, len(key))
	for i := range key {
		out[i] = labels[i] != key[i]
	}
	return out
}

func count(v []bool) int {
	n := 0
	for _, b := range v {
		if b {
			n++
		}
	}
	return n
}

// firstFlips returns, for orders random query orders, the number of triggers
// queried up to and including the first flipped one.
func firstFlips(flipped []bool, orders int, r *rand.Rand) []float64 {
	out := make([]float64, orders)
	for o := range out {
		for k, i := range r.Perm(len(flipped)) {
			if flipped[i] {
				out[o] = float64(k + 1)
				break
			}
		}
	}
	return out
}

// meanSD is the mean and population standard deviation of v, NaN for no values.
func meanSD(v []float64) (mean, sd float64) {
	if len(v) == 0 {
		return math.NaN(), math.NaN()
	}
	return stat.PopMeanStdDev(v, nil)
}

func medianOf32(v []float32) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return float64(s[len(s)/2])
}

// sameWeights reports whether two model files carry the same initializer values.
func sameWeights(a, b []byte) (bool, error) {
	ma, err := onnx.Decode(a)
	if err != nil {
		return false, err
	}
	mb, err := onnx.Decode(b)
	if err != nil {
		return false, err
	}
	if len(ma.Graph.Initializers) != len(mb.Graph.Initializers) {
		return false, nil
	}
	for i, ta := range ma.Graph.Initializers {
		tb := mb.Graph.Initializers[i]
		if ta.Name != tb.Name || !slices.Equal(ta.Float, tb.Float) || !slices.Equal(ta.Double, tb.Double) || !slices.Equal(ta.Int64, tb.Int64) {
			return false, nil
		}
	}
	return true, nil
}
