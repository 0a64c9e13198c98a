package infer

import (
	"fmt"
	"runtime"
	"sync"
)

// Runner evaluates a Program on batches of a fixed size, reusing its plans'
// buffers across calls. A Runner is not safe for concurrent use.
type Runner[T Float] struct {
	prog  *Program
	batch int
	plans []*plan[T]
}

// NewRunner plans prog for batches of exactly batch examples, computed in T
// (float32, as ONNX runtimes compute, or float64), over threads workers (at most
// GOMAXPROCS when threads is 0 or less, and never more than batch).
func NewRunner[T Float](prog *Program, batch, threads int) (*Runner[T], error) {
	if batch < 1 {
		return nil, fmt.Errorf("batch size %d: must be positive", batch)
	}
	if threads < 1 {
		threads = runtime.GOMAXPROCS(0)
	}
	threads = min(threads, batch)
	r := &Runner[T]{prog: prog, batch: batch}
	for w := 0; w < threads; w++ {
		if probe, ok := any(prog.probe).(*plan[T]); ok && w == 0 && probe != nil {
			// Compile's plan serves the first worker: verification plans once.
			prog.probe = nil
			r.plans = append(r.plans, probe)
			continue
		}
		pl, err := newPlan[T](prog)
		if err != nil {
			return nil, err
		}
		r.plans = append(r.plans, pl)
	}
	return r, nil
}

// Batch is the number of examples per call.
func (r *Runner[T]) Batch() int { return r.batch }

// Threads is the number of workers examples are spread over.
func (r *Runner[T]) Threads() int { return len(r.plans) }

// Logits runs the network on batch examples laid out back to back in inputs and
// returns the (batch x classes) logits, row-major.
func (r *Runner[T]) Logits(inputs []float32) ([]float64, error) {
	logits := make([]float64, r.batch*r.prog.Classes)
	return logits, r.LogitsInto(logits, inputs)
}

// LogitsInto is Logits writing into logits, which must hold batch x classes values:
// after the first call it allocates nothing.
func (r *Runner[T]) LogitsInto(logits []float64, inputs []float32) error {
	size, classes := r.prog.InputSize(), r.prog.Classes
	if want := r.batch * size; len(inputs) != want {
		return fmt.Errorf("input %s: %d values given, %d examples of shape %v need %d", r.prog.InputName, len(inputs), r.batch, r.prog.InputShape, want)
	}
	if len(logits) != r.batch*classes {
		return fmt.Errorf("logits: room for %d values, %d needed", len(logits), r.batch*classes)
	}
	workers := len(r.plans)
	errs := make([]error, workers)
	run := func(w int) {
		defer func() {
			if p := recover(); p != nil {
				errs[w] = fmt.Errorf("inference panicked: %v", p)
			}
		}()
		pl := r.plans[w]
		for i := w; i < r.batch; i += workers {
			example := inputs[i*size : (i+1)*size]
			if in, ok := any(pl.input.data).([]float32); ok {
				copy(in, example) // a float32 runner: no conversion loop
			} else {
				for k, v := range example {
					pl.input.data[k] = T(v)
				}
			}
			for _, step := range pl.steps {
				step()
			}
			for k, v := range pl.output.data {
				logits[i*classes+k] = float64(v)
			}
		}
	}
	if workers == 1 {
		run(0)
	} else {
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				run(w)
			}()
		}
		wg.Wait()
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Close releases the runner's buffers; the runner must not be used afterwards.
func (r *Runner[T]) Close() { r.plans = nil }
