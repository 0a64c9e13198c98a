// Command ablation measures what each part of the tie method contributes on one
// model: for every variant and key seed it watermarks the model, records the
// bundle's measures, how far its tightest margin sits above the benign controls'
// logit differences, and how many triggers each attack flips. It prints one Markdown
// table (BENCHMARKS.md, "Trigger measures and the tie's ablation").
//
//	go run ./hack/ablation -model ../shared/realmodels/cifar10/oval21__cifar_wide_kw.onnx \
//	    -mean 0.485,0.456,0.406 -std 0.225,0.225,0.225 \
//	    -natural ../shared/realmodels/cifar10/cifar10_from_vnncomp.bin \
//	    -variants none/9/16/0.01,none/9/-1/-1 -seeds 3 [-ort-lib libonnxruntime.so.1]
//
// A variant is ANCHOR/COMPETITORS[/NOISE-MARGIN[/PRUNE-PROBE[/DIVERSITY]]]
// (WatermarkOptions fields; 0 or absent: the default, negative: off).
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/attack"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/dataset"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/eval"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/train"
)

type config struct {
	modelPath, naturalPath, variants, ortLib string
	norm                                     fragile.Normalization
	nhwc                                     bool
	seeds, firstSeed, triggers, singles      int
	header                                   bool
	floor                                    float64
}

func main() {
	var c config
	flag.StringVar(&c.modelPath, "model", "", "ONNX model (required)")
	mean := flag.String("mean", "", "per-channel mean, comma-separated")
	std := flag.String("std", "", "per-channel standard deviation, comma-separated")
	flag.StringVar(&c.naturalPath, "natural", "", "natural images in the CIFAR-10 binary layout: the logit scale, the natural anchor, and the fine-tuning data")
	flag.StringVar(&c.variants, "variants", "none/9", "ANCHOR/COMPETITORS[/NOISE-MARGIN[/PRUNE-PROBE[/DIVERSITY]]] variants, comma-separated")
	flag.IntVar(&c.singles, "single-weights", 10, "single-weight changes of 1% (fixed draws) every bundle meets")
	flag.IntVar(&c.seeds, "seeds", 1, "key seeds per variant")
	flag.IntVar(&c.firstSeed, "first-seed", 0, "first key seed")
	flag.IntVar(&c.triggers, "triggers", 100, "triggers per watermark")
	flag.BoolVar(&c.header, "header", true, "print the table's header")
	flag.Float64Var(&c.floor, "margin-floor", 0, "WatermarkOptions.MarginFloor (0: the default, 1e-5)")
	flag.StringVar(&c.ortLib, "ort-lib", "", "onnxruntime's shared library: adds onnxruntime (own process) to the benign controls")
	flag.BoolVar(&c.nhwc, "nhwc", false, "the model takes NHWC images (the marabou models)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if *mean != "" {
		if c.norm.Mean, err = floats(*mean); err == nil {
			c.norm.Std, err = floats(*std)
		}
	}
	if err == nil {
		err = run(ctx, c)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ablation:", err)
		os.Exit(1)
	}
}

// attacked is one attacked copy of the model.
type attacked struct {
	name  string
	model []byte
}

func run(ctx context.Context, c config) error {
	model, err := os.ReadFile(c.modelPath)
	if err != nil {
		return err
	}
	var natural []float32
	var data attack.Data
	if c.naturalPath != "" {
		set, err := dataset.CIFAR10Binary(c.naturalPath)
		if err != nil {
			return err
		}
		fed := set
		if len(c.norm.Mean) > 0 {
			if fed, err = set.Normalised(float32s(c.norm.Mean), float32s(c.norm.Std)); err != nil {
				return err
			}
		}
		if c.nhwc {
			set, fed = set.ChannelsLast(), fed.ChannelsLast()
		}
		natural = set.Images
		data = attack.Data{Images: fed.Images, Labels: fed.Labels, Size: fed.Size(), Classes: fed.Classes}
	}
	var ort eval.Runtime
	if c.ortLib != "" {
		work, err := os.MkdirTemp("", "ablation-ort-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(work)
		if ort, err = eval.OnnxRuntime(".", c.ortLib, work); err != nil {
			return err
		}
	}
	// The attacks every bundle meets, fixed seeds: the same attacked files for every
	// variant and key seed.
	var attacks []attacked
	add := func(name string, m []byte, err error) error {
		if err == nil {
			attacks = append(attacks, attacked{name, m})
		}
		return err
	}
	p, err := attack.Prune(model, 0.01)
	if err := add("prune 1%", p, err); err != nil {
		return err
	}
	p, err = attack.Prune(model, 0.001)
	if err := add("prune 0.1%", p, err); err != nil {
		return err
	}
	noisy, err := attack.Noise(model, attack.NoiseOptions{Sigma: 1e-3, Relative: true}, rand.New(rand.NewPCG(7, 0)))
	if err := add("noise 1e-3 rel", noisy, err); err != nil {
		return err
	}
	half, err := attack.Float16(model)
	if err := add("float16", half, err); err != nil {
		return err
	}
	q, err := attack.Int8(model)
	if err := add("int8", q, err); err != nil {
		return err
	}
	singles := make([][]byte, c.singles)
	draws := rand.New(rand.NewPCG(13, 0))
	for i := range singles {
		if singles[i], _, err = attack.SingleWeight(model, 0.01, draws); err != nil {
			return err
		}
	}
	if len(data.Labels) > 0 {
		ft, err := attack.FineTune(ctx, model, data, train.Options{Steps: 1, LearningRate: 1e-4, Optimizer: train.Adam, BatchSize: 32}, rand.New(rand.NewPCG(11, 0)))
		if err := add("fine-tune 1 step", ft, err); err != nil {
			return err
		}
	}
	if c.header {
		names := make([]string, len(attacks))
		for i, a := range attacks {
			names[i] = a.name
		}
		fmt.Printf("| anchor | k | noise margin | prune probe | diversity | seed | generator steps | watermark s (CPU s) | logit scale (triggers / natural) | active units | weight coverage | distance min / median | median margin | tightest margin / its largest control difference | false alarms (re-save, float64, batch 7%s) | %s flipped | single weights detected |\n",
			map[bool]string{true: ", onnxruntime"}[ort != nil], strings.Join(names, " | "))
		fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---:|---:|---|" + strings.Repeat("---:|", len(attacks)) + "---:|")
	}
	for _, v := range strings.Split(c.variants, ",") {
		opts, err := variant(v)
		if err != nil {
			return err
		}
		for seed := c.firstSeed; seed < c.firstSeed+c.seeds; seed++ {
			if err := row(ctx, c, model, natural, opts, seed, attacks, singles, ort); err != nil {
				return fmt.Errorf("variant %s seed %d: %w", v, seed, err)
			}
		}
	}
	return nil
}

// variant parses ANCHOR/COMPETITORS[/NOISE-MARGIN[/PRUNE-PROBE[/DIVERSITY]]].
func variant(v string) (fragile.WatermarkOptions, error) {
	parts := strings.Split(v, "/")
	var o fragile.WatermarkOptions
	if len(parts) < 2 || len(parts) > 5 {
		return o, fmt.Errorf("variant %q: want ANCHOR/COMPETITORS[/NOISE-MARGIN[/PRUNE-PROBE[/DIVERSITY]]]", v)
	}
	o.Anchor = fragile.Anchor(parts[0])
	var err error
	if o.Competitors, err = strconv.Atoi(parts[1]); err != nil {
		return o, fmt.Errorf("variant %q: %w", v, err)
	}
	fields := []*float64{&o.NoiseMargin, &o.PruneProbe, &o.Diversity}
	for i, p := range parts[2:] {
		if *fields[i], err = strconv.ParseFloat(p, 64); err != nil {
			return o, fmt.Errorf("variant %q: %w", v, err)
		}
	}
	return o, nil
}

func row(ctx context.Context, c config, model []byte, natural []float32, opts fragile.WatermarkOptions, seed int, attacks []attacked, singles [][]byte, ort eval.Runtime) error {
	key, err := fragile.NewKey(rand.NewChaCha8([32]byte{byte(seed + 1)}))
	if err != nil {
		return err
	}
	opts.Triggers, opts.InputMin, opts.InputMax, opts.Normalization, opts.Natural, opts.MarginFloor = c.triggers, 0, 1, c.norm, natural, c.floor
	start, cpu := time.Now(), cpuSeconds()
	b, err := fragile.Watermark(ctx, model, key, opts)
	if err != nil {
		return err
	}
	took, tookCPU := time.Since(start).Seconds(), cpuSeconds()-cpu

	// Benign controls: how far each moves the logits, and whether a label moved.
	net, err := fragile.LoadNetwork(model)
	if err != nil {
		return err
	}
	reference, err := eval.TriggerLogits(net, b, b.Len(), false)
	if err != nil {
		return err
	}
	resaved, err := fragile.LoadNetwork(onnx.Encode(net.Model()))
	if err != nil {
		return err
	}
	worst := make([]float64, b.Len()) // largest difference of each trigger over the controls
	var alarms []string
	control := func(z []float64, err error) error {
		if err != nil {
			return err
		}
		labels, _ := nn.TopTwo(z, b.Classes)
		flipped := 0
		for i := range labels {
			if labels[i] != b.KeyLabels[i] {
				flipped++
			}
			for j := i * b.Classes; j < (i+1)*b.Classes; j++ {
				worst[i] = math.Max(worst[i], math.Abs(z[j]-reference[j]))
			}
		}
		alarms = append(alarms, strconv.Itoa(flipped))
		return nil
	}
	if err := control(eval.TriggerLogits(resaved, b, b.Len(), false)); err != nil {
		return err
	}
	if err := control(eval.TriggerLogits(net, b, b.Len(), true)); err != nil {
		return err
	}
	if err := control(eval.TriggerLogits(net, b, 7, false)); err != nil {
		return err
	}
	if ort != nil {
		if err := control(ort(model, b)); err != nil {
			return err
		}
	}
	_, margins := nn.TopTwo(reference, b.Classes)
	headroom := math.Inf(1)
	for i, m := range margins {
		if worst[i] > 0 {
			headroom = math.Min(headroom, m/worst[i])
		}
	}
	if r := fragile.Verify(ctx, model, b); r.Result != fragile.ResultIntact {
		return fmt.Errorf("the watermarked model itself verifies %s: %s", r.Result, r.Message)
	}
	flips := make([]string, len(attacks))
	for i, a := range attacks {
		flips[i] = strconv.Itoa(fragile.Verify(ctx, a.model, b).Mismatched)
	}
	detected := 0
	for _, s := range singles {
		if fragile.Verify(ctx, s, b).Mismatched > 0 {
			detected++
		}
	}
	m := b.Measures
	fmt.Printf("| %s | %d | %s | %s | %s | %d | %d | %.0f (%.0f) | %.3g / %.3g | %.1f%% | %.1f%% | %.3g / %.3g | %.3g | %.3gx | %s | %s | %d/%d |\n",
		opts.Anchor, opts.Competitors, setting(opts.NoiseMargin), setting(opts.PruneProbe), setting(opts.Diversity), seed, b.Steps, took, tookCPU,
		m.TriggerLogitScale, m.NaturalLogitScale, 100*m.ActiveUnits, 100*m.WeightCoverage, m.MinDistance, m.MedianDistance,
		median(margins), headroom, strings.Join(alarms, ", "), strings.Join(flips, " | "), detected, len(singles))
	return nil
}

// cpuSeconds is the user and system CPU time this process has used: on a shared
// machine the wall-clock time of a watermark is only an upper bound.
func cpuSeconds() float64 {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return math.NaN()
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano()).Seconds()
}

// setting shows a variant's value as Watermark takes it: zero or negative is off.
func setting(v float64) string {
	if v <= 0 {
		return "off"
	}
	return fmt.Sprint(v)
}

func float32s(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func floats(s string) ([]float64, error) {
	var out []float64
	for _, part := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(part, 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		out = append(out, v)
	}
	return out, nil
}
