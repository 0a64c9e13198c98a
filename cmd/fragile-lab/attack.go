package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/fragile-operator/fragile-operator/internal/cli"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/attack"
)

func init() { subcommands["attack"] = attackCommand }

// attackCommand writes a modified copy of a model, for testing detection.
func attackCommand(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: fragile attack finetune|poison|backdoor|noise|prune|fp16 --model IN --out OUT [attack flags]")
		return exitUsage
	}
	switch args[0] {
	case "finetune", "poison", "backdoor":
		return attackTraining(ctx, args[0], args[1:])
	case "noise":
		return attackNoise(ctx, args[1:])
	case "prune":
		return attackPrune(ctx, args[1:])
	case "fp16":
		return attackFloat16(ctx, args[1:])
	default:
		return fail("attack", fmt.Errorf("unknown attack %q (available: finetune, poison, backdoor, noise, prune, fp16)", args[0]))
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
	model, err := cli.ReadModel(ctx, *in)
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

func attackPrune(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("attack prune", flag.ContinueOnError)
	in := fs.String("model", "", "ONNX model to attack (required)")
	out := fs.String("out", "", "attacked ONNX model to write (required)")
	fraction := fs.Float64("fraction", 0.01, "fraction of each weight tensor's smallest-magnitude weights to zero")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	return writeAttacked(ctx, "attack prune", *in, *out, func(m []byte) ([]byte, error) { return attack.Prune(m, *fraction) },
		fmt.Sprintf("magnitude pruning of %g of each weight tensor", *fraction))
}

func attackFloat16(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("attack fp16", flag.ContinueOnError)
	in := fs.String("model", "", "ONNX model to attack (required)")
	out := fs.String("out", "", "attacked ONNX model to write (required)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	return writeAttacked(ctx, "attack fp16", *in, *out, attack.Float16, "weights rounded to float16 and back")
}

// writeAttacked reads a model, applies fn and writes the result.
func writeAttacked(ctx context.Context, cmd, in, out string, fn func([]byte) ([]byte, error), what string) int {
	if in == "" || out == "" {
		return fail(cmd, errors.New("--model and --out are required"))
	}
	model, err := cli.ReadModel(ctx, in)
	if err != nil {
		return fail(cmd, err)
	}
	attacked, err := fn(model)
	if err != nil {
		return fail(cmd, err)
	}
	if err := os.WriteFile(out, attacked, 0o644); err != nil {
		return fail(cmd, err)
	}
	fmt.Printf("wrote %s: %s\n", out, what)
	return 0
}
