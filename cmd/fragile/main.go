// Command fragile is the product binary of fragile-operator: keygen, watermark, verify
// and inspect for people and for the Jobs the operator runs, and manager for the operator
// itself. It is also the operator's image. The research tooling (attacks, the detection
// benchmark, data sets) is in cmd/fragile-lab and is not linked here.
//
// Exit status: 0 success (verify: intact), 1 tampered (verify only), 2 usage error or
// could not complete.
package main

import "github.com/fragile-operator/fragile-operator/internal/cli"

// subcommands maps a subcommand name to its entry point; each subcommand file
// registers itself in init so that main stays a dispatcher.
var subcommands = cli.Commands{}

// exitUsage is the exit status for bad flags and for "could not complete".
const exitUsage = cli.ExitUsage

func main() { cli.Main("fragile", subcommands) }

// fail prints an error for a person and returns the "could not complete" status.
func fail(cmd string, err error) int { return cli.Fail("fragile "+cmd, err) }
