// Command fragile-lab is fragile-operator's research bench, kept out of the product
// binary: model attacks (fine-tuning, poisoning, backdoors, noise, pruning, float16),
// the detection benchmark behind BENCHMARKS.md (classifier training, data sets, the
// second runtime) and extraction of the ONNX model zoo's mnist-7 for demos and tests.
// It expects a checkout of this repository with a Go toolchain: eval builds
// hack/ortrun and mnist7 reads the onnx-go module from the Go module cache.
//
// Exit status: 0 success, 1 a finding (eval: false alarms), 2 usage error or could
// not complete.
package main

import "github.com/fragile-operator/fragile-operator/internal/cli"

// subcommands maps a subcommand name to its entry point; each subcommand file
// registers itself in init so that main stays a dispatcher.
var subcommands = cli.Commands{}

// exitUsage is the exit status for bad flags and for "could not complete".
const exitUsage = cli.ExitUsage

func main() { cli.Main("fragile-lab", subcommands) }

// fail prints an error for a person and returns the "could not complete" status.
func fail(cmd string, err error) int { return cli.Fail("fragile-lab "+cmd, err) }
