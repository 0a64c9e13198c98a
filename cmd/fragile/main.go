// Command fragile is the one binary of fragile-operator. Its subcommands cover the
// whole product: keygen, watermark, verify and inspect for people and for the Jobs
// the operator runs, and manager for the operator itself.
//
// Exit status: 0 success (verify: intact), 1 tampered (verify only), 2 usage error or
// could not complete, 3 stopped by SIGTERM or Ctrl-C before finishing (nothing was
// written but the report, whose message starts with "stopped").
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// subcommands maps a subcommand name to its entry point; each subcommand file
// registers itself in init so that main stays a dispatcher.
var subcommands = map[string]func(ctx context.Context, args []string) int{}

// exitUsage is the exit status for bad flags and for "could not complete".
const exitUsage = 2

// exitStopped is the exit status of a command stopped by SIGTERM or Ctrl-C.
const exitStopped = 3

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		os.Exit(exitUsage)
	}
	run, ok := subcommands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "fragile: unknown subcommand %q\n\n", os.Args[1])
		usage()
		os.Exit(exitUsage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		// A second signal gets the default action: it ends the process at once.
		stop()
		fmt.Fprintln(os.Stderr, "fragile: stopping (signal received); a second signal ends the process at once")
	}()
	code := run(ctx, os.Args[2:])
	stop()
	os.Exit(code)
}

func usage() {
	names := make([]string, 0, len(subcommands))
	for name := range subcommands {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stderr, "usage: fragile <subcommand> [flags]")
	fmt.Fprintln(os.Stderr, "subcommands:")
	for _, name := range names {
		fmt.Fprintln(os.Stderr, "  "+name)
	}
	fmt.Fprintln(os.Stderr, "run 'fragile <subcommand> -h' for its flags")
}
