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

func attackInt8(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("attack int8", flag.ContinueOnError)
	in := fs.String("model", "", "ONNX model to attack (required)")
	out := fs.String("out", "", "attacked ONNX model to write (required)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	return writeAttacked(ctx, "attack int8", *in, *out, attack.Int8,
		"Conv/Gemm/MatMul weights quantised to int8 (per tensor, symmetric) and back")
}

func attackSingleWeight(ctx context.Context, args []string) int {
	const cmd = "attack single-weight"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	in := fs.String("model", "", "ONNX model to attack (required)")
	out := fs.String("out", "", "attacked ONNX model to write (required)")
	relative := fs.Float64("relative", 0.01, "relative change of the weight drawn")
	seed := fs.Uint64("seed", 1, "seed of the draw of the weight and the sign")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *in == "" || *out == "" {
		return fail(cmd, errors.New("--model and --out are required"))
	}
	model, err := cli.ReadModel(ctx, *in)
	if err != nil {
		return fail(cmd, err)
	}
	attacked, c, err := attack.SingleWeight(model, *relative, rand.New(rand.NewPCG(*seed, 0x73696e676c65)))
	if err != nil {
		return fail(cmd, err)
	}
	if err := os.WriteFile(*out, attacked, 0o644); err != nil {
		return fail(cmd, err)
	}
	fmt.Printf("wrote %s: %s[%d] changed from %g to %g (%+.3g%%), seed %d\n", *out, c.Tensor, c.Index, c.Old, c.New, 100*(float64(c.New)/float64(c.Old)-1), *seed)
	return 0
}
