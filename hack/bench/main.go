// Command bench measures the ML core's speed on mnist-7 and prints a markdown
// table for BENCHMARKS.md: watermarking 100 triggers, verifying them, and, on the
// same triggers in the same run, onnx-go's own reference inference and onnxruntime
// (the practical limit, run by hack/ortrun in its own process). Every figure is the
// median of -rounds runs.
//
//	go run ./hack/bench -rounds 5 [-ort-lib .../libonnxruntime.so.1]
package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	onnxgo "github.com/owulveryck/onnx-go"
	"github.com/owulveryck/onnx-go/backend/x/gorgonnx"
	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/internal/zoo"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/eval"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
)

func main() {
	rounds := flag.Int("rounds", 5, "runs per measurement; the median is reported")
	triggers := flag.Int("triggers", 100, "triggers per bundle")
	ortLib := flag.String("ort-lib", "", "libonnxruntime.so.1 for the onnxruntime column (skipped when empty)")
	flag.Parse()
	if err := run(*rounds, *triggers, *ortLib); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(rounds, n int, ortLib string) error {
	model, err := zoo.MNIST7()
	if err != nil {
		return err
	}
	// A fixed key, so every run benchmarks the same work.
	key := fragile.Key(sha256.Sum256([]byte("fragile-operator benchmark key")))
	ctx := context.Background()
	opts := fragile.WatermarkOptions{Triggers: n, InputMax: 255}

	var bundle *fragile.Bundle
	watermark := measure(rounds, func() error {
		bundle, err = fragile.Watermark(ctx, model, key, opts)
		return err
	})
	if err != nil {
		return err
	}
	verify := measure(rounds, func() error {
		if r := fragile.Verify(ctx, model, bundle); r.Result != fragile.ResultIntact {
			return fmt.Errorf("verify: %s %s", r.Result, r.Message)
		}
		return nil
	})
	net, err := fragile.LoadNetwork(model)
	if err != nil {
		return err
	}
	runner, err := nn.NewRunner(net, n, tensor.Float32)
	if err != nil {
		return err
	}
	inference := measure(rounds, func() error { _, err := runner.Logits(bundle.Triggers); return err })
	reference, err := onnxGoReference(model, bundle, rounds)
	if err != nil {
		return err
	}

	host, _ := os.Hostname()
	fmt.Printf("Machine: %s, %d cores (%s), %s, %s/%s. Median of %d runs; %d triggers, mnist-7.\n\n",
		host, runtime.NumCPU(), cpuModel(), runtime.Version(), runtime.GOOS, runtime.GOARCH, rounds, n)
	fmt.Println("| measurement | median | goal |")
	fmt.Println("|---|---:|---|")
	fmt.Printf("| watermark (train generator, refine to an all-class tie, %d triggers) | %s | < 30 s |\n", n, watermark)
	fmt.Printf("| verify: decode + compile + run %d triggers (`fragile.Verify`) | %s | < 50 ms |\n", n, verify)
	fmt.Printf("| our inference only, %d triggers in one batch (graph reused) | %s | |\n", n, inference)
	fmt.Printf("| onnx-go reference inference, same %d triggers one at a time (graph reused) | %s | |\n", n, reference)
	if ortLib != "" {
		ortTime, agree, err := onnxruntime(ortLib, model, bundle, rounds)
		if err != nil {
			return err
		}
		fmt.Printf("| onnxruntime 1.30, same %d triggers one at a time, 1 thread (own process) | %s | practical limit |\n", n, ortTime)
		fmt.Printf("\nRatios: our inference / onnxruntime = %.1fx; full verify / onnxruntime = %.1fx; onnx-go reference / onnxruntime = %.1fx. "+
			"onnxruntime gives the key label to %d of %d triggers.\n",
			inference.Seconds()/ortTime.Seconds(), verify.Seconds()/ortTime.Seconds(), reference.Seconds()/ortTime.Seconds(), agree, n)
	}
	return nil
}

// measure runs fn rounds times and returns the median duration.
func measure(rounds int, fn func() error) time.Duration {
	times := make([]time.Duration, 0, rounds)
	for i := 0; i < rounds; i++ {
		start := time.Now()
		if err := fn(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		times = append(times, time.Since(start))
	}
	return median(times)
}

func median(times []time.Duration) time.Duration {
	slices.Sort(times)
	return times[len(times)/2].Round(100 * time.Microsecond)
}

// onnxGoReference runs the triggers through onnx-go's gorgonnx backend, one per
// run since mnist-7 bakes in batch size 1, reusing one decoded graph.
func onnxGoReference(model []byte, b *fragile.Bundle, rounds int) (time.Duration, error) {
	backend := gorgonnx.NewGraph()
	m := onnxgo.NewModel(backend)
	if err := m.UnmarshalBinary(model); err != nil {
		return 0, err
	}
	shape := append([]int{1}, b.InputShape...)
	var runErr error
	d := measure(rounds, func() error {
		for i := 0; i < b.Len() && runErr == nil; i++ {
			x := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(append([]float32(nil), b.Trigger(i)...)))
			if runErr = m.SetInput(0, x); runErr == nil {
				runErr = backend.Run()
			}
		}
		return runErr
	})
	return d, runErr
}

// onnxruntime runs the same triggers through onnxruntime (hack/ortrun, in its own
// process) and returns its median round time and how many triggers it labels as the
// key says.
func onnxruntime(lib string, model []byte, b *fragile.Bundle, rounds int) (time.Duration, int, error) {
	dir, err := os.MkdirTemp("", "fragile-bench")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	bin, err := eval.BuildOrtRun(".", dir)
	if err != nil {
		return 0, 0, err
	}
	res, err := eval.RunOrtRun(bin, lib, dir, model, b, rounds)
	if err != nil {
		return 0, 0, err
	}
	times := make([]time.Duration, len(res.RoundSeconds))
	for i, s := range res.RoundSeconds {
		times[i] = time.Duration(s * float64(time.Second))
	}
	agree := 0
	for i, l := range res.Labels {
		if l == b.KeyLabels[i] {
			agree++
		}
	}
	return median(times), agree, nil
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if name, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
		}
	}
	return "unknown CPU"
}
