package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/attack"
)

func init() { subcommands["attack"] = attackCommand }

// attackCommand writes a modified copy of a model, for testing detection.
func attackCommand(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: fragile attack noise --model IN --out OUT --sigma S [--relative] [--seed N]")
		return exitUsage
	}
	switch args[0] {
	case "noise":
		return attackNoise(ctx, args[1:])
	default:
		return fail("attack", fmt.Errorf("unknown attack %q (available: noise)", args[0]))
	}
}

func attackNoise(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("attack noise", flag.ContinueOnError)
	in := fs.String("model", "", "ONNX model to attack (required)")
	out := fs.String("out", "", "attacked ONNX model to write (required)")
	sigma := fs.Float64("sigma", 0, "noise standard deviation (required)")
	relative := fs.Bool("relative", false, "sigma is a fraction of each weight tensor's standard deviation")
	seed := fs.Uint64("seed", 1, "seed of the noise draws")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *in == "" || *out == "" {
		return fail("attack noise", errors.New("--model and --out are required"))
	}
	model, err := readModel(ctx, *in)
	if err != nil {
		return fail("attack noise", err)
	}
	noisy, err := attack.Noise(model, attack.NoiseOptions{Sigma: *sigma, Relative: *relative}, rand.New(rand.NewPCG(*seed, 0x6e6f697365)))
	if err != nil {
		return fail("attack noise", err)
	}
	if err := os.WriteFile(*out, noisy, 0o644); err != nil {
		return fail("attack noise", err)
	}
	kind := "absolute"
	if *relative {
		kind = "relative to each tensor's standard deviation"
	}
	fmt.Printf("wrote %s: Gaussian weight noise, sigma %g (%s), seed %d\n", *out, *sigma, kind, *seed)
	return 0
}
