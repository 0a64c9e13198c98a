// Command fragile is the product binary of fragile-operator: keygen, watermark, verify
// and inspect for people and for the Jobs the operator runs, and manager for the operator
// itself. It is also the operator's image. The research tooling (attacks, the detection
// benchmark, data sets) is in cmd/fragile-lab and is not linked here.
//
// Exit status: 0 success (verify: intact), 1 tampered (verify only), 2 usage error or
// could not complete, 3 stopped by SIGTERM or Ctrl-C before finishing (nothing was
// written but the report, whose message starts with "stopped").
package main

import (
	"context"

	"github.com/fragile-operator/fragile-operator/internal/cli"
)

// subcommands maps a subcommand name to its entry point; each subcommand file
// registers itself in init so that main stays a dispatcher.
var subcommands = cli.Commands{}

// exitUsage is the exit status for bad flags and for "could not complete".
const exitUsage = cli.ExitUsage

func main() { cli.Main("fragile", subcommands) }

// fail prints an error for a person and returns the "could not complete" status.
func fail(cmd string, err error) int { return cli.Fail("fragile "+cmd, err) }

// exitStopped is the exit status of a command stopped by SIGTERM or Ctrl-C.
const exitStopped = cli.ExitStopped

// stopped returns the stop error naming what was abandoned when ctx was cancelled.
func stopped(ctx context.Context, err error, what string) error { return cli.Stopped(ctx, err, what) }
