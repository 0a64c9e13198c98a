package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/fragile-operator/fragile-operator/internal/cli"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/storage"
)

func init() { subcommands["watermark"] = watermark }

func watermark(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("watermark", flag.ContinueOnError)
	modelRef := fs.String("model", "", "ONNX model file, http(s) URL or s3://BUCKET/KEY (required)")
	modelS3 := fs.String("model-s3-credentials", "", "directory of S3 settings for an s3:// --model (default: AWS_* environment)")
	keyPath := fs.String("key", "", "key file from `fragile keygen` (required)")
	out := fs.String("out", "", "sealed bundle to write: a file or s3://BUCKET/KEY")
	outS3 := fs.String("out-s3-credentials", "", "directory of S3 settings for an s3:// --out (default: AWS_* environment)")
	outSecret := fs.String("out-secret", "", "write the sealed bundle into this Secret of the pod's namespace (in-cluster)")
	progressSecret := fs.String("progress-secret", "", "report training progress on this Secret of the pod's namespace (in-cluster; default: --out-secret)")
	report := fs.String("report", "", "also write the JSON report here (a Job's termination message path)")
	triggers := fs.Int("triggers", 100, "number of triggers")
	inputRange := fs.String("input-range", "0,1", "MIN,MAX of the pixel values, before --input-mean/--input-std (mnist-7: 0,255)")
	inputMean := fs.String("input-mean", "", "M1,M2,M3: per-channel mean the serving pipeline subtracts before the model (torchvision Normalize)")
	inputStd := fs.String("input-std", "", "S1,S2,S3: per-channel standard deviation the pipeline divides by (with --input-mean)")
	competitors := fs.Int("competitors", fragile.DefaultCompetitors, "tie method: runner-up classes each trigger is tied to (-1: every other class)")
	noiseMargin := fs.Float64("noise-margin", 0, "tie method: margin floor in units of the measured float32 rounding (0: off, the relative floor alone; 24 with --prune-probe 0.01 detects 1% pruning, at several times the training time)")
	pruneProbe := fs.Float64("prune-probe", 0, "tie method: fraction of each weight tensor the pruning probe zeroes (0: no probe)")
	diversity := fs.Float64("diversity", fragile.DefaultDiversity, "generator methods: weight of the duplicate penalty on the triggers' pairwise distances (0: none)")
	method := fs.String("method", string(fragile.DefaultMethod), "trigger method: "+methodNames())
	lambda := fs.Float64("lambda", 10, "weight of the paper's variance term")
	lr := fs.Float64("learning-rate", 1e-3, "Adam learning rate at the start; cut by 1/sqrt(10) after each 20 steps without a new best key match, at most 4 times")
	maxSteps := fs.Int("max-steps", 300, "optimisation step budget")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	start := time.Now()
	result := fragile.WatermarkReport{Result: fragile.WatermarkFailed, Method: *method, Triggers: *triggers}
	failWith := func(err error) int {
		err = stopped(ctx, err, "no bundle was written")
		result.Message = err.Error()
		result.DurationSeconds = time.Since(start).Seconds()
		if werr := writeReport(*report, result); werr != nil {
			fmt.Fprintf(os.Stderr, "fragile watermark: writing the report: %v\n", werr)
		}
		return fail("watermark", err)
	}
	if *modelRef == "" || *keyPath == "" || (*out == "" && *outSecret == "") {
		return failWith(errors.New("--model, --key and one of --out or --out-secret are required"))
	}
	lo, hi, err := cli.ParseRange(*inputRange)
	if err != nil {
		return failWith(err)
	}
	norm, err := cli.ParseNormalization(*inputMean, *inputStd)
	if err != nil {
		return failWith(err)
	}
	key, err := readKey(*keyPath)
	if err != nil {
		return failWith(err)
	}
	model, err := readModelFrom(ctx, *modelRef, *modelS3)
	if err != nil {
		return failWith(err)
	}
	progress := newProgressPrinter()
	if *progressSecret == "" {
		*progressSecret = *outSecret
	}
	if *progressSecret != "" {
		toSecret := newSecretProgressReporter(ctx, *progressSecret)
		toTerminal := progress
		progress = func(p fragile.Progress) { toTerminal(p); toSecret(p) }
	}
	opts := fragile.WatermarkOptions{
		Method:        fragile.Method(*method),
		Triggers:      *triggers,
		InputMin:      lo,
		InputMax:      hi,
		Normalization: norm,
		Competitors:   *competitors,
		NoiseMargin:   *noiseMargin,
		PruneProbe:    *pruneProbe,
		Diversity:     *diversity,
		Lambda:        *lambda,
		LearningRate:  *lr,
		MaxSteps:      *maxSteps,
		Progress:      progress,
	}
	// One training step of a large model cannot be interrupted (cli.Abandon): after a
	// signal, the command gives up on it within cli.StopGrace and reports the stop.
	bundle, err := cli.Abandon(ctx, cli.StopGrace, func() (*fragile.Bundle, error) {
		return fragile.Watermark(ctx, model, key, opts)
	})
	if err != nil {
		return failWith(err)
	}
	sealed, err := fragile.Seal(bundle, key)
	if err != nil {
		return failWith(err)
	}
	var bundleURI string
	if *out != "" {
		digest, err := writeBundleTo(ctx, *out, *outS3, sealed)
		if err != nil {
			return failWith(err)
		}
		bundleURI = *out
		if *progressSecret != "" && *outSecret == "" {
			if err := writeBundleRecord(ctx, *progressSecret, digest); err != nil {
				return failWith(err)
			}
		}
	}
	if *outSecret != "" {
		if err := writeBundleSecret(ctx, *outSecret, sealed); err != nil {
			return failWith(err)
		}
	}
	result = fragile.WatermarkReport{
		Result:          fragile.WatermarkSucceeded,
		Method:          string(bundle.Method),
		Triggers:        bundle.Len(),
		KeyMatch:        1,
		Steps:           bundle.Steps,
		ModelDigest:     bundle.DigestString(),
		KeyID:           key.ID(),
		BundleBytes:     len(sealed),
		BundleURI:       bundleURI,
		BundleDigest:    storage.Digest(sealed),
		DurationSeconds: time.Since(start).Seconds(),
	}
	if err := writeReport(*report, result); err != nil {
		return fail("watermark", err)
	}
	minMargin, maxMargin := marginRange(bundle.Margins)
	fmt.Printf("watermarked %s: %d triggers, 100%% key match after %d steps (%s), top-1/top-2 margins %.3g..%.3g, %.1fs\n",
		*modelRef, bundle.Len(), bundle.Steps, bundle.Method, minMargin, maxMargin, result.DurationSeconds)
	fmt.Printf("model %s, bundle %d bytes sealed with key ID %s\n", result.ModelDigest, len(sealed), result.KeyID)
	return 0
}

func methodNames() string {
	names := make([]string, len(fragile.Methods))
	for i, m := range fragile.Methods {
		names[i] = string(m)
	}
	return strings.Join(names, ", ")
}

func marginRange(m []float32) (lo, hi float32) {
	lo, hi = m[0], m[0]
	for _, v := range m {
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi
}

// newProgressPrinter shows a progress bar on a terminal and a plain log line every
// few seconds otherwise (a Job's log, CI).
func newProgressPrinter() func(fragile.Progress) {
	if term.IsTerminal(int(os.Stderr.Fd())) {
		return func(p fragile.Progress) {
			if p.Phase == fragile.PhaseRefinement {
				fmt.Fprintln(os.Stderr, progressLine(p))
				return
			}
			const width = 30
			done := width * p.Step / p.MaxSteps
			fmt.Fprintf(os.Stderr, "\rtraining [%s%s] step %d/%d  key match %3.0f%%  loss %.4g ",
				strings.Repeat("#", done), strings.Repeat(".", width-done), p.Step, p.MaxSteps, 100*p.KeyMatch, p.Loss)
			if p.KeyMatch == 1 || p.Step == p.MaxSteps {
				fmt.Fprintln(os.Stderr)
			}
		}
	}
	var last time.Time
	return func(p fragile.Progress) {
		if p.Phase == fragile.PhaseRefinement {
			fmt.Fprintln(os.Stderr, progressLine(p)) // an iteration takes seconds to minutes
			return
		}
		if time.Since(last) < 2*time.Second && p.KeyMatch < 1 && p.Step < p.MaxSteps {
			return
		}
		last = time.Now()
		fmt.Fprintf(os.Stderr, "training step %d/%d: key match %.0f%%, loss %.4g, learning rate %.2g\n", p.Step, p.MaxSteps, 100*p.KeyMatch, p.Loss, p.LearningRate)
	}
}
