// Command bench measures verification and watermarking speed on mnist-7, the
// CIFAR-10 resnet_2b of ../shared/realmodels and PyTorch's resnet18 (3x32x32) and
// mobilenet_v2 (3x224x224) fixtures, next to onnxruntime (the practical limit, run
// by hack/ortrun in its own process) on the same inputs in the same run, at one
// and at two threads each, and prints markdown tables for BENCHMARKS.md. Every
// time is the median of -rounds runs.
//
//	go run ./hack/bench -rounds 7 -ort-lib .../libonnxruntime.so.1 -torch-dir DIR
package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/fragile-operator/fragile-operator/internal/zoo"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/eval"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/infer"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

func main() {
	rounds := flag.Int("rounds", 7, "runs per verify and inference measurement; the median is reported")
	wmRounds := flag.Int("watermark-rounds", 3, "runs per watermark measurement")
	triggers := flag.Int("triggers", 100, "triggers per bundle")
	ortLib := flag.String("ort-lib", "", "libonnxruntime.so.1 for the onnxruntime columns (skipped when empty)")
	torchDir := flag.String("torch-dir", "", "hack/torch fixtures (resnet18_32_op17, mobilenet_v2_224_op17); skipped when empty")
	realDir := flag.String("realmodels", "../shared/realmodels/cifar10", "the CIFAR-10 models of ../shared")
	watermark := flag.String("watermark", "mnist-7,resnet_2b,resnet18", "models to watermark (the others verify seeded random inputs)")
	only := flag.String("models", "", "comma-separated subset of models to run (default all)")
	flag.Parse()
	models, err := loadModels(*realDir, *torchDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if *only != "" {
		models = slices.DeleteFunc(models, func(m benchModel) bool { return !slices.Contains(strings.Split(*only, ","), m.name) })
	}
	cfg := config{rounds: *rounds, wmRounds: *wmRounds, triggers: *triggers, ortLib: *ortLib, watermark: strings.Split(*watermark, ",")}
	if err := run(models, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type config struct {
	rounds, wmRounds, triggers int
	ortLib                     string
	watermark                  []string
}

// benchModel is one model of the benchmark with its input range.
type benchModel struct {
	name     string
	data     []byte
	inputMax float64
}

func loadModels(realDir, torchDir string) ([]benchModel, error) {
	mnist, err := zoo.MNIST7()
	if err != nil {
		return nil, err
	}
	models := []benchModel{{"mnist-7", mnist, 255}}
	add := func(name, path string) error {
		data, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s skipped: %v\n", name, err)
			return nil
		}
		models = append(models, benchModel{name, data, 1})
		return nil
	}
	if err := add("resnet_2b", filepath.Join(realDir, "cifar10_resnet__resnet_2b.onnx")); err != nil {
		return nil, err
	}
	if torchDir == "" {
		fmt.Fprintln(os.Stderr, "bench: no -torch-dir: resnet18 and mobilenet_v2 skipped")
		return models, nil
	}
	if err := add("resnet18", filepath.Join(torchDir, "resnet18_32_op17.onnx")); err != nil {
		return nil, err
	}
	return models, add("mobilenet_v2", filepath.Join(torchDir, "mobilenet_v2_224_op17.onnx"))
}

// row is what one model measured at one thread count.
type row struct {
	model                string
	threads              int
	verify, inference    time.Duration
	ort                  time.Duration
	verifyCPU, ortCPU    time.Duration
	agree                int
	maxDiff, minMargin   float64
	activation, runAlloc int64
	verifyAlloc          int64
	watermark            time.Duration
	watermarkErr         string
}

func run(models []benchModel, cfg config) error {
	dir, err := os.MkdirTemp("", "fragile-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var ortBin string
	if cfg.ortLib != "" {
		if ortBin, err = eval.BuildOrtRun(".", dir); err != nil {
			return err
		}
	}
	host, _ := os.Hostname()
	fmt.Printf("Machine: %s, %d cores (%s), %s, %s/%s, BLAS %s. Load average at start: %s. Median of %d runs; %d triggers.\n\n",
		host, runtime.NumCPU(), cpuModel(), runtime.Version(), runtime.GOOS, runtime.GOARCH, infer.BLAS, loadAvg(), cfg.rounds, cfg.triggers)
	fmt.Println("| model | threads | our full verify (decode, compile, run) | our inference only (runner reused) | onnxruntime (one at a time, session reused) | verify / onnxruntime | inference / onnxruntime | CPU time: our verify / onnxruntime | onnxruntime labels as ours | largest logit difference | smallest trigger margin |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	// Rows are printed as each model finishes: a 224 px model takes minutes.
	var rows []row
	for _, m := range models {
		fmt.Fprintf(os.Stderr, "bench: %s\n", m.name)
		measured, err := measureModel(m, cfg, ortBin, dir)
		if err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		rows = append(rows, measured...)
		for _, r := range measured {
			printRow(r, cfg)
		}
	}
	fmt.Println()
	fmt.Printf("| model | activation memory at batch %d | allocated per inference run (runner reused) | allocated per full verify | watermark %d triggers (median of %d) |\n", cfg.triggers, cfg.triggers, cfg.wmRounds)
	fmt.Println("|---|---:|---:|---:|---:|")
	for _, r := range rows {
		if r.threads != 1 {
			continue
		}
		wm := "not measured"
		switch {
		case r.watermarkErr != "":
			wm = r.watermarkErr
		case r.watermark > 0:
			wm = r.watermark.Round(10 * time.Millisecond).String()
		}
		fmt.Printf("| %s | %s | %s | %s | %s |\n", r.model, mb(r.activation), mb(r.runAlloc), mb(r.verifyAlloc), wm)
	}
	fmt.Printf("\nLoad average at the end: %s.\n", loadAvg())
	return nil
}

func measureModel(m benchModel, cfg config, ortBin, dir string) ([]row, error) {
	decoded, err := onnx.Decode(m.data)
	if err != nil {
		return nil, err
	}
	prog, err := infer.Compile(decoded)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	key := fragile.Key(sha256.Sum256([]byte("fragile-operator benchmark key")))
	var bundle *fragile.Bundle
	var wmTime time.Duration
	var wmErr string
	if slices.Contains(cfg.watermark, m.name) {
		opts := fragile.WatermarkOptions{Triggers: cfg.triggers, InputMax: m.inputMax}
		wmTime, err = measure(cfg.wmRounds, func() error {
			bundle, err = fragile.Watermark(ctx, m.data, key, opts)
			return err
		})
		if err != nil {
			wmErr = "failed: " + err.Error()
			bundle = nil
		}
	}
	if bundle == nil {
		if bundle, err = randomBundle(m, prog, cfg.triggers); err != nil {
			return nil, err
		}
	}
	var rows []row
	for _, threads := range []int{1, 2} {
		fragile.InferenceThreads = threads
		r := row{model: m.name, threads: threads, watermark: wmTime, watermarkErr: wmErr, activation: prog.ActivationBytes(cfg.triggers)}
		runner, err := infer.NewRunner[float32](prog, cfg.triggers, threads)
		if err != nil {
			return nil, err
		}
		logits := make([]float64, cfg.triggers*prog.Classes)
		// The machine is shared: each round times our verify, our inference and
		// onnxruntime back to back, so a burst of load hits all three alike.
		var verifyTimes, inferTimes, ortTimes, verifyCPU, ortCPU []time.Duration
		var ort *eval.OrtResult
		for round := 0; round < cfg.rounds; round++ {
			start, startCPU := time.Now(), cpuTime()
			if rep := fragile.Verify(ctx, m.data, bundle); rep.Result != fragile.ResultIntact {
				return nil, fmt.Errorf("verify: %s %s", rep.Result, rep.Message)
			}
			verifyTimes, verifyCPU = append(verifyTimes, time.Since(start)), append(verifyCPU, cpuTime()-startCPU)
			start = time.Now()
			if err := runner.LogitsInto(logits, bundle.Triggers); err != nil {
				return nil, err
			}
			inferTimes = append(inferTimes, time.Since(start))
			if ortBin != "" {
				if ort, err = eval.RunOrtRunThreads(ortBin, cfg.ortLib, dir, m.data, bundle, 1, threads); err != nil {
					return nil, err
				}
				ortTimes = append(ortTimes, time.Duration(ort.RoundSeconds[0]*float64(time.Second)))
				ortCPU = append(ortCPU, time.Duration(ort.RoundCPUSeconds[0]*float64(time.Second)))
			}
		}
		r.verify, r.inference, r.verifyCPU = median(verifyTimes), median(inferTimes), median(verifyCPU)
		r.verifyAlloc = allocated(func() { fragile.Verify(ctx, m.data, bundle) })
		r.runAlloc = allocated(func() { _ = runner.LogitsInto(logits, bundle.Triggers) })
		_, margins := nn.TopTwo(logits, prog.Classes)
		r.minMargin = slices.Min(margins)
		if ort != nil {
			r.ort, r.ortCPU = median(ortTimes), median(ortCPU)
			for i, l := range ort.Labels {
				if l == bundle.KeyLabels[i] {
					r.agree++
				}
			}
			for i := range logits {
				r.maxDiff = math.Max(r.maxDiff, math.Abs(logits[i]-ort.Logits[i]))
			}
		}
		rows = append(rows, r)
	}
	fragile.InferenceThreads = 0
	return rows, nil
}

// randomBundle is a bundle of seeded uniform inputs labelled as our engine labels
// them: verification does the same work as on real triggers.
func randomBundle(m benchModel, prog *infer.Program, n int) (*fragile.Bundle, error) {
	rng := rand.New(rand.NewPCG(7, 7))
	x := make([]float32, n*prog.InputSize())
	for i := range x {
		x[i] = float32(m.inputMax * rng.Float64())
	}
	r, err := infer.NewRunner[float32](prog, n, 0)
	if err != nil {
		return nil, err
	}
	logits, err := r.Logits(x)
	if err != nil {
		return nil, err
	}
	labels, margins := nn.TopTwo(logits, prog.Classes)
	return &fragile.Bundle{
		Method: fragile.MethodNatural, ModelDigest: sha256.Sum256(m.data), InputName: prog.InputName,
		InputShape: prog.InputShape, InputMax: m.inputMax, Classes: prog.Classes, KeyLabels: labels,
		Triggers: x, Margins: toFloat32(margins),
	}, nil
}

func toFloat32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// allocated returns the bytes fn allocates.
func allocated(fn func()) int64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return int64(after.TotalAlloc - before.TotalAlloc)
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

// measure runs fn rounds times and returns the median duration.
func measure(rounds int, fn func() error) (time.Duration, error) {
	times := make([]time.Duration, 0, rounds)
	for i := 0; i < rounds; i++ {
		start := time.Now()
		if err := fn(); err != nil {
			return 0, err
		}
		times = append(times, time.Since(start))
	}
	return median(times), nil
}

func median(times []time.Duration) time.Duration {
	slices.Sort(times)
	return times[len(times)/2].Round(10 * time.Microsecond)
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	return strings.Join(f[:3], " ")
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

func printRow(r row, cfg config) {
	ratio := func(d time.Duration) string {
		if r.ort == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", d.Seconds()/r.ort.Seconds())
	}
	cpu := "-"
	if r.ortCPU > 0 {
		cpu = fmt.Sprintf("%s / %s = %.2fx", r.verifyCPU.Round(100*time.Microsecond), r.ortCPU.Round(100*time.Microsecond), r.verifyCPU.Seconds()/r.ortCPU.Seconds())
	}
	fmt.Printf("| %s | %d | %s | %s | %s | %s | %s | %s | %d/%d | %.3g | %.3g |\n", r.model, r.threads, r.verify, r.inference, r.ort,
		ratio(r.verify), ratio(r.inference), cpu, r.agree, cfg.triggers, r.maxDiff, r.minMargin)
}
