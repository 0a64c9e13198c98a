package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// Exit statuses shared by every subcommand.
const (
	// ExitOK is success (verify: intact).
	ExitOK = 0
	// ExitUsage is the exit status for bad flags and for "could not complete".
	ExitUsage = 2
)

// Command is one subcommand's entry point: it gets the flags after its name and
// returns the process's exit status.
type Command func(ctx context.Context, args []string) int

// Commands maps a subcommand name to its entry point; each subcommand file of a
// binary registers itself in init so that main stays a dispatcher.
type Commands map[string]Command

// Main dispatches os.Args to the subcommand it names and exits with its status. The
// context it passes is cancelled on SIGINT and SIGTERM, so a Job deleted by the operator
// or a Ctrl-C stops long work within seconds.
func Main(binary string, commands Commands) {
	os.Exit(Dispatch(binary, commands, os.Args[1:]))
}

// Dispatch runs the subcommand args names and returns its exit status; Main's testable part.
func Dispatch(binary string, commands Commands, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(binary, commands)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	run, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "%s: unknown subcommand %q\n\n", binary, args[0])
		usage(binary, commands)
		return ExitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args[1:])
}

func usage(binary string, commands Commands) {
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: %s <subcommand> [flags]\nsubcommands:\n  %s\nrun '%s <subcommand> -h' for its flags\n",
		binary, strings.Join(names, "\n  "), binary)
}

// Fail prints an error for a person and returns the "could not complete" status.
// cmd names the command as a person typed it ("fragile verify").
func Fail(cmd string, err error) int {
	fmt.Fprintf(os.Stderr, "%s: %v\n", cmd, err)
	return ExitUsage
}

// ParseRange parses the --input-range flag's "MIN,MAX".
func ParseRange(s string) (lo, hi float64, err error) {
	parts := strings.Split(s, ",")
	if len(parts) == 2 {
		if _, err = fmt.Sscan(parts[0], &lo); err == nil {
			_, err = fmt.Sscan(parts[1], &hi)
		}
		if err == nil && hi > lo {
			return lo, hi, nil
		}
	}
	return 0, 0, fmt.Errorf("--input-range %q: want MIN,MAX with MIN < MAX, e.g. 0,255", s)
}
