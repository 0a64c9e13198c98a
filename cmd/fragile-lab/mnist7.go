package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/fragile-operator/fragile-operator/internal/zoo"
)

func init() { subcommands["mnist7"] = mnist7 }

// mnist7 writes the ONNX model zoo's MNIST model (mnist-7), extracted from the onnx-go
// module in the Go module cache. The model is never committed to this repository;
// scripts and the demo call this instead.
func mnist7(_ context.Context, args []string) int {
	fs := flag.NewFlagSet("mnist7", flag.ContinueOnError)
	out := fs.String("out", "mnist-7.onnx", "file to write")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	model, err := zoo.MNIST7()
	if err == nil {
		err = os.WriteFile(*out, model, 0o644)
	}
	if err != nil {
		return fail("mnist7", err)
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d bytes)\n", *out, len(model))
	return 0
}
