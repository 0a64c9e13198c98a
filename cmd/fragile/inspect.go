package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"image/png"
	"os"
	"sort"

	"github.com/fragile-operator/fragile-operator/pkg/fragile"
)

func init() { subcommands["inspect"] = inspect }

func inspect(_ context.Context, args []string) int {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	bundlePath := fs.String("bundle", "", "sealed bundle (required)")
	keyPath := fs.String("key", "", "key file (required)")
	pngPath := fs.String("png", "", "write a grid of the triggers with their key labels to this PNG file")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *bundlePath == "" || *keyPath == "" {
		return fail("inspect", errors.New("--bundle and --key are required"))
	}
	key, err := readKey(*keyPath)
	if err != nil {
		return fail("inspect", err)
	}
	sealed, err := os.ReadFile(*bundlePath)
	if err != nil {
		return fail("inspect", err)
	}
	b, err := fragile.Open(sealed, key)
	if err != nil {
		return fail("inspect", fmt.Errorf("bundle %s: %w", *bundlePath, err))
	}
	perClass := make([]int, b.Classes)
	for _, l := range b.KeyLabels {
		perClass[l]++
	}
	margins := append([]float32(nil), b.Margins...)
	sort.Slice(margins, func(i, j int) bool { return margins[i] < margins[j] })
	fmt.Printf("bundle:        %s (%d bytes, key ID %s)\n", *bundlePath, len(sealed), key.ID())
	fmt.Printf("method:        %s (lambda %g, %d steps, final loss %.4g)\n", b.Method, b.Lambda, b.Steps, b.FinalLoss)
	fmt.Printf("model:         %s\n", b.DigestString())
	fmt.Printf("input:         %s, shape %v, pixel values in [%g, %g]\n", b.InputName, b.InputShape, b.InputMin, b.InputMax)
	if n := b.Normalization; !n.IsZero() {
		fmt.Printf("normalised:    (pixel - mean) / std on axis %d, mean %v, std %v\n", n.Axis, n.Mean, n.Std)
	}
	if b.Competitors > 0 {
		fmt.Printf("tie:           each trigger tied to its %d strongest runner-up classes\n", b.Competitors)
	}
	if b.Diversity > 0 {
		fmt.Printf("diversity:     generator trained with a duplicate penalty of weight %g\n", b.Diversity)
	}
	fmt.Printf("triggers:      %d over %d classes, per class %v\n", b.Len(), b.Classes, perClass)
	fmt.Printf("margins:       min %.4g, median %.4g, max %.4g (top-1 minus top-2 logit)\n",
		margins[0], margins[len(margins)/2], margins[len(margins)-1])
	printMeasures(b.Measures)
	if *pngPath != "" {
		img, err := fragile.RenderTriggers(b, 10)
		if err != nil {
			return fail("inspect", err)
		}
		f, err := os.Create(*pngPath)
		if err != nil {
			return fail("inspect", err)
		}
		if err := png.Encode(f, img); err != nil {
			f.Close()
			return fail("inspect", err)
		}
		if err := f.Close(); err != nil {
			return fail("inspect", err)
		}
		fmt.Printf("trigger grid:  %s\n", *pngPath)
	}
	return 0
}

// printMeasures shows what the triggers can see of the model; a version 1 bundle
// has no measures.
func printMeasures(m fragile.Measures) {
	if m == (fragile.Measures{}) {
		fmt.Println("measures:      none (bundle sealed before format version 2)")
		return
	}
	natural := "no natural inputs measured"
	if m.NaturalLogitScale > 0 {
		natural = fmt.Sprintf("natural inputs %.3g, ratio %.3g", m.NaturalLogitScale, m.TriggerLogitScale/m.NaturalLogitScale)
	}
	fmt.Printf("logit scale:   %.3g at the triggers (median largest |logit|); %s\n", m.TriggerLogitScale, natural)
	fmt.Printf("active units:  %.1f%% of ReLU-type units active at at least one trigger\n", 100*m.ActiveUnits)
	fmt.Printf("weights:       %.1f%% of weight elements move some trigger's margin\n", 100*m.WeightCoverage)
	fmt.Printf("distances:     min %.3g, median %.3g (RMS per value, relative to the input range)\n", m.MinDistance, m.MedianDistance)
}
