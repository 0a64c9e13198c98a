package cli

import (
	"context"
	"time"
)

// StopGrace is how long a command waits, after SIGTERM or Ctrl-C, for long work to
// return through its context before it abandons the work (see Abandon).
const StopGrace = time.Second

// Abandon runs work and returns its result, unless ctx is cancelled and work has not
// returned within grace: then it returns ctx's error at once and leaves work running
// until the process exits.
//
// The library checks its context between steps, and that suffices on small models. One
// step of a large one cannot be interrupted: gorgonia differentiates a graph and runs a
// tape without a context, and a 224 px network's graph and first training step took
// more than two CPU-minutes here. A deleted Job must stop within seconds, so a command
// gives up on such a step rather than on its promise. work must own what it touches:
// the caller must not release anything work still uses, and should return from the
// command (and so end the process) soon after Abandon gives up.
func Abandon[T any](ctx context.Context, grace time.Duration, work func() (T, error)) (T, error) {
	type result struct {
		value T
		err   error
	}
	done := make(chan result, 1) // buffered: an abandoned work still finishes its send
	go func() {
		v, err := work()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.value, r.err
	case <-ctx.Done():
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.value, r.err
	case <-timer.C:
		var zero T
		return zero, ctx.Err()
	}
}
