// Command ablation measures what each part of the tie method contributes on one
// model: for every variant (anchor, competitors) and key seed it watermarks the
// model, records the bundle's measures, and counts the triggers that 1% magnitude
// pruning and relative weight noise flip. It prints one Markdown table
// (BENCHMARKS.md, "Trigger measures and the tie's ablation").
//
//	go run ./hack/ablation -model ../shared/realmodels/cifar10/oval21__cifar_wide_kw.onnx \
//	    -mean 0.485,0.456,0.406 -std 0.225,0.225,0.225 \
//	    -natural ../shared/realmodels/cifar10/cifar10_from_vnncomp.bin
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/attack"
)

func main() {
	modelPath := flag.String("model", "", "ONNX model (required)")
	mean := flag.String("mean", "", "per-channel mean, comma-separated")
	std := flag.String("std", "", "per-channel standard deviation, comma-separated")
	naturalPath := flag.String("natural", "", "natural images in the CIFAR-10 binary layout, for the logit scale and the natural anchor")
	variants := flag.String("variants", "none/9,noise/9,natural/9,noise/3", "ANCHOR/COMPETITORS variants, comma-separated")
	seeds := flag.Int("seeds", 1, "key seeds per variant")
	triggers := flag.Int("triggers", 100, "triggers per watermark")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *modelPath, *mean, *std, *naturalPath, *variants, *seeds, *triggers); err != nil {
		fmt.Fprintln(os.Stderr, "ablation:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, modelPath, mean, std, naturalPath, variants string, seeds, triggers int) error {
	model, err := os.ReadFile(modelPath)
	if err != nil {
		return err
	}
	var norm fragile.Normalization
	if mean != "" {
		if norm.Mean, err = floats(mean); err != nil {
			return err
		}
		if norm.Std, err = floats(std); err != nil {
			return err
		}
	}
	var natural []float32
	if naturalPath != "" {
		if natural, err = cifarPixels(naturalPath); err != nil {
			return err
		}
	}
	pruned, err := attack.Prune(model, 0.01)
	if err != nil {
		return err
	}
	fmt.Println("| anchor | k | seed | watermark s | logit scale (triggers / natural) | active units | weight coverage | distance min / median | prune 1% flipped | noise 1e-3 rel flipped |")
	fmt.Println("|---|---:|---:|---:|---|---:|---:|---|---:|---:|")
	for _, v := range strings.Split(variants, ",") {
		anchor, k, ok := strings.Cut(v, "/")
		competitors, err := strconv.Atoi(k)
		if !ok || err != nil {
			return fmt.Errorf("variant %q: want ANCHOR/COMPETITORS", v)
		}
		for seed := range seeds {
			key, err := fragile.NewKey(rand.NewChaCha8([32]byte{byte(seed + 1)}))
			if err != nil {
				return err
			}
			start := time.Now()
			b, err := fragile.Watermark(ctx, model, key, fragile.WatermarkOptions{
				Triggers: triggers, InputMin: 0, InputMax: 1, Normalization: norm,
				Anchor: fragile.Anchor(anchor), Competitors: competitors, Natural: natural,
			})
			if err != nil {
				return fmt.Errorf("variant %s seed %d: %w", v, seed, err)
			}
			took := time.Since(start).Seconds()
			noisy, err := attack.Noise(model, attack.NoiseOptions{Sigma: 1e-3, Relative: true}, rand.New(rand.NewPCG(7, uint64(seed))))
			if err != nil {
				return err
			}
			if r := fragile.Verify(ctx, model, b); r.Result != fragile.ResultIntact {
				return fmt.Errorf("variant %s seed %d: the watermarked model itself verifies %s: %s", v, seed, r.Result, r.Message)
			}
			p, n := fragile.Verify(ctx, pruned, b), fragile.Verify(ctx, noisy, b)
			m := b.Measures
			fmt.Printf("| %s | %d | %d | %.0f | %.3g / %.3g | %.1f%% | %.1f%% | %.3g / %.3g | %d | %d |\n",
				anchor, competitors, seed, took, m.TriggerLogitScale, m.NaturalLogitScale, 100*m.ActiveUnits,
				100*m.WeightCoverage, m.MinDistance, m.MedianDistance, p.Mismatched, n.Mismatched)
		}
	}
	return nil
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

// cifarPixels reads the CIFAR-10 binary layout (a label byte, then the R, G and B
// planes of 32x32) into pixel values in [0, 1], CHW, labels dropped.
func cifarPixels(path string) ([]float32, error) {
	const record = 1 + 3*32*32
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data)%record != 0 {
		return nil, fmt.Errorf("%s: %d bytes is not a whole number of %d-byte CIFAR-10 records", path, len(data), record)
	}
	out := make([]float32, 0, len(data)/record*(record-1))
	for i := 0; i < len(data); i += record {
		for _, v := range data[i+1 : i+record] {
			out = append(out, float32(v)/255)
		}
	}
	return out, nil
}
