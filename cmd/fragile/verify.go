package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/fragile-operator/fragile-operator/pkg/fragile"
)

func init() { subcommands["verify"] = verify }

// verify exits 0 when the model is intact, 1 when it was tampered with, and 2 when
// it could not be verified (unreadable model, wrong key, damaged bundle, ...).
func verify(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	modelRef := fs.String("model", "", "ONNX model file or http(s) URL (required)")
	bundlePath := fs.String("bundle", "", "sealed bundle from `fragile watermark` (required)")
	keyPath := fs.String("key", "", "key file (required)")
	asJSON := fs.Bool("json", false, "print one JSON object instead of text")
	report := fs.String("report", "", "also write the JSON report here (a Job's termination message path)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	start := time.Now()
	r := verifyFiles(ctx, *modelRef, *bundlePath, *keyPath)
	if r.Result == fragile.ResultError && r.DurationSeconds == 0 {
		r.DurationSeconds = time.Since(start).Seconds()
	}
	code := r.Result.ExitCode()
	if r.Result == fragile.ResultError && ctx.Err() != nil {
		// Stopped, not failed: the report says so, and the exit status differs.
		r.Message = stopped(ctx, nil, "no verdict").Error()
		code = exitStopped
	}
	if err := writeReport(*report, r); err != nil {
		fmt.Fprintf(os.Stderr, "fragile verify: writing the report: %v\n", err)
	}
	if *asJSON {
		data, _ := json.Marshal(r)
		fmt.Println(string(data))
	} else {
		printVerifyReport(r)
	}
	return code
}

func verifyFiles(ctx context.Context, modelRef, bundlePath, keyPath string) fragile.VerifyReport {
	failed := func(err error) fragile.VerifyReport {
		return fragile.VerifyReport{Result: fragile.ResultError, Message: err.Error()}
	}
	if modelRef == "" || bundlePath == "" || keyPath == "" {
		return failed(errors.New("--model, --bundle and --key are required"))
	}
	key, err := readKey(keyPath)
	if err != nil {
		return failed(err)
	}
	sealed, err := os.ReadFile(bundlePath)
	if err != nil {
		return failed(fmt.Errorf("bundle file: %w", err))
	}
	bundle, err := fragile.Open(sealed, key)
	if err != nil {
		return failed(fmt.Errorf("bundle %s: %w", bundlePath, err))
	}
	model, err := readModel(ctx, modelRef)
	if err != nil {
		return failed(err)
	}
	return fragile.Verify(ctx, model, bundle)
}

func printVerifyReport(r fragile.VerifyReport) {
	switch r.Result {
	case fragile.ResultIntact:
		fmt.Printf("INTACT: all %d triggers keep their key labels", r.Total)
	case fragile.ResultTampered:
		fmt.Printf("TAMPERED: %d of %d triggers changed label", r.Mismatched, r.Total)
	default:
		fmt.Printf("COULD NOT VERIFY: %s\n", r.Message)
		return
	}
	digest := "file digest differs from the watermarked file"
	if r.DigestMatches {
		digest = "file digest matches the watermarked file"
	}
	fmt.Printf(" (%s; %.0f ms)\n", digest, 1000*r.DurationSeconds)
}
