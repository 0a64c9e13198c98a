package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fragile-operator/fragile-operator/internal/zoo"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/eval"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/train"
)

func init() { subcommands["eval"] = evalCommand }

// evalCommand runs the detection benchmark and writes the markdown tables and plots
// that BENCHMARKS.md quotes.
func evalCommand(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "one configuration per attack class, one seed, MLP only (minutes, for CI)")
	out := fs.String("out", "eval-out", "directory for detection.md and the plots")
	seeds := fs.Int("seeds", 3, "attacked models per configuration")
	triggers := fs.Int("triggers", 100, "triggers per bundle")
	methods := fs.String("methods", "natural,paper,natural-boundary,boundary,tie", "trigger methods to compare")
	ortLib := fs.String("ort-lib", "", "libonnxruntime.so.1 for the second-runtime control (hack/lib.sh installs it)")
	repo := fs.String("repo", ".", "repository root (to build hack/ortrun)")
	cacheDir := fs.String("cache-dir", "", "where trained Fashion-MNIST models are kept between runs")
	suites := fs.String("suites", "fashion,mnist7,real,torch", "which subjects to run: fashion (models trained here), mnist7 (the ONNX zoo's), real (real CIFAR-10 models of ../shared), torch (PyTorch fixtures)")
	realModels := fs.String("real-models", strings.Join(eval.DefaultRealModels, ","), "real CIFAR-10 models to run (internal/zoo names), or all")
	realDir := fs.String("realmodels-dir", "", "folder of the real CIFAR-10 models and images (default $FRAGILE_REALMODELS_DIR, else ../shared/realmodels/cifar10 from --repo)")
	torchFixtures := fs.String("torch-fixtures", strings.Join(eval.DefaultTorchFixtures, ","), "PyTorch fixtures to run (hack/torch names)")
	torchDir := fs.String("torch-dir", os.Getenv("FRAGILE_TORCH_DIR"), "folder of the PyTorch fixtures (hack/torch/fixtures.sh prints it)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	start := time.Now()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fail("eval", err)
	}
	so := eval.SubjectOptions{Architectures: train.ArchitectureNames(), TrainSteps: 1400, MNIST7: true, CacheDir: *cacheDir, Log: os.Stderr}
	if *quick {
		so = eval.SubjectOptions{Architectures: []string{"mlp"}, TrainSteps: 900, MNIST7: true, CacheDir: *cacheDir, Log: os.Stderr, Quick: true}
		*seeds = 1
	}
	run := map[string]bool{}
	for _, s := range strings.Split(*suites, ",") {
		switch s = strings.TrimSpace(s); s {
		case "fashion", "mnist7", "real", "torch":
			run[s] = true
		case "":
		default:
			return fail("eval", fmt.Errorf("--suites: unknown suite %q (want fashion, mnist7, real, torch)", s))
		}
	}
	if !run["fashion"] {
		so.Architectures = nil
	}
	so.MNIST7 = run["mnist7"]
	// The real models and the fixtures live outside the repository: a run without
	// them says so in its report rather than failing.
	var absent []string
	if run["real"] || run["torch"] {
		dir := *realDir
		if dir == "" {
			var err error
			if dir, err = zoo.RealModelsDir(*repo); err != nil {
				absent = append(absent, err.Error()+"; the real-model and PyTorch-fixture tables need its 185 images")
				run["real"], run["torch"] = false, false
			}
		}
		so.RealModelsDir = dir
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if *quick && !explicit["real-models"] {
		*realModels = strings.Join(eval.QuickRealModels, ",")
	}
	if *quick && !explicit["torch-fixtures"] {
		*torchFixtures = ""
	}
	if run["real"] {
		so.RealModels = splitList(*realModels)
		if *realModels == "all" {
			so.RealModels = nil
			for _, m := range zoo.CIFARModels {
				so.RealModels = append(so.RealModels, m.Name)
			}
		}
	}
	if run["torch"] {
		if *torchDir == "" {
			absent = append(absent, "PyTorch fixtures absent: no --torch-dir or FRAGILE_TORCH_DIR (hack/torch/fixtures.sh exports them)")
		} else {
			so.TorchFixtures, so.TorchDir = splitList(*torchFixtures), *torchDir
		}
	}
	for _, a := range absent {
		fmt.Fprintf(os.Stderr, "fragile eval: skipped: %s\n", a)
	}
	subjects, err := eval.Subjects(ctx, so)
	if err != nil {
		return fail("eval", err)
	}
	cfg := eval.Config{
		Triggers: *triggers, Seeds: *seeds,
		Key: fragile.Key(sha256.Sum256([]byte("fragile-operator evaluation key"))),
		Log: os.Stderr,
	}
	for _, m := range strings.Split(*methods, ",") {
		cfg.Methods = append(cfg.Methods, fragile.Method(strings.TrimSpace(m)))
	}
	if *ortLib != "" {
		work, err := os.MkdirTemp("", "fragile-eval")
		if err != nil {
			return fail("eval", err)
		}
		defer os.RemoveAll(work)
		if cfg.SecondRuntime, err = eval.OnnxRuntime(*repo, *ortLib, work); err != nil {
			return fail("eval", err)
		}
		cfg.SecondRuntimeName = "onnxruntime 1.30 (own process)"
	}
	rep, err := eval.Run(ctx, subjects, cfg)
	if err != nil {
		return fail("eval", err)
	}
	plots, err := rep.Plots(*out)
	if err != nil {
		return fail("eval", err)
	}
	var md bytes.Buffer
	for _, a := range absent {
		fmt.Fprintf(&md, "Skipped: %s.\n\n", a)
	}
	rep.Markdown(&md)
	for _, p := range plots {
		fmt.Fprintf(&md, "\n![%s](%s)\n", filepath.Base(p), filepath.Base(p))
	}
	fmt.Fprintf(&md, "\nRun time %s.\n", time.Since(start).Round(time.Second))
	if err := os.WriteFile(filepath.Join(*out, "detection.md"), md.Bytes(), 0o644); err != nil {
		return fail("eval", err)
	}
	os.Stdout.Write(md.Bytes())
	if rep.FalseAlarms() > 0 {
		fmt.Fprintf(os.Stderr, "fragile eval: %d false alarms on benign controls\n", rep.FalseAlarms())
		return 1
	}
	return 0
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
