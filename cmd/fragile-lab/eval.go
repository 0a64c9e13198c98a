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
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	start := time.Now()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fail("eval", err)
	}
	so := eval.SubjectOptions{Architectures: train.ArchitectureNames(), TrainSteps: 1400, MNIST7: true, CacheDir: *cacheDir, Log: os.Stderr}
	if *quick {
		so = eval.SubjectOptions{Architectures: []string{"mlp"}, TrainSteps: 900, MNIST7: true, CacheDir: *cacheDir, Log: os.Stderr}
		*seeds = 1
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
	rep, err := eval.Run(ctx, subjects, eval.Attacks(*quick), cfg)
	if err != nil {
		return fail("eval", err)
	}
	plots, err := rep.Plots(*out)
	if err != nil {
		return fail("eval", err)
	}
	var md bytes.Buffer
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
