package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/fragile-operator/fragile-operator/internal/cli"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/storage"
)

func init() { subcommands["verify"] = verify }

// verify exits 0 when the model is intact, 1 when it was tampered with, and 2 when
// it could not be verified (unreadable model, wrong key, damaged bundle, ...).
func verify(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	modelRef := fs.String("model", "", "ONNX model file, http(s) URL or s3://BUCKET/KEY (required unless --endpoint)")
	bundlePath := fs.String("bundle", "", "sealed bundle from `fragile watermark`: a file or s3://BUCKET/KEY (required)")
	keyPath := fs.String("key", "", "key file (required)")
	var src verifySources
	fs.StringVar(&src.modelS3, "model-s3-credentials", "", "directory of S3 settings for an s3:// --model (default: AWS_* environment)")
	fs.StringVar(&src.bundleS3, "bundle-s3-credentials", "", "directory of S3 settings for an s3:// --bundle (default: AWS_* environment)")
	fs.StringVar(&src.bundleDigest, "bundle-digest", "", `"sha256:<hex>" the bundle must have; other bytes: could not verify`)
	asJSON := fs.Bool("json", false, "print one JSON object instead of text")
	report := fs.String("report", "", "also write the JSON report here (a Job's termination message path)")
	var live endpointFlags
	live.register(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	start := time.Now()
	src.model, src.bundle, src.key = *modelRef, *bundlePath, *keyPath
	var r fragile.VerifyReport
	switch {
	case live.url != "" && *modelRef != "":
		r = fragile.VerifyReport{Result: fragile.ResultError, Message: "--model and --endpoint exclude each other: verify a file or a live endpoint"}
	case live.url != "":
		r = verifyEndpoint(ctx, &live, src)
	default:
		// Running a 224 px model's triggers is one uninterruptible pass (cli.Abandon).
		var err error
		r, err = cli.Abandon(ctx, cli.StopGrace, func() (fragile.VerifyReport, error) { return verifyFrom(ctx, src), nil })
		if err != nil {
			r = fragile.VerifyReport{Result: fragile.ResultError, Message: err.Error()}
		}
	}
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

// verifySources says where verification reads from: model, bundle and key references, the S3
// settings for s3:// ones, and the digest the bundle must have.
type verifySources struct {
	model, bundle, key string
	modelS3, bundleS3  string
	bundleDigest       string
}

// openBundle reads the key and the sealed bundle from wherever src says, checks the
// bundle's digest when one is given, and opens it. cause classifies a storage failure.
func openBundle(ctx context.Context, src verifySources) (_ *fragile.Bundle, cause string, _ error) {
	if src.bundle == "" || src.key == "" {
		return nil, "", errors.New("--bundle and --key are required")
	}
	key, err := readKey(src.key)
	if err != nil {
		return nil, "", err
	}
	sealed, cause, err := storage.ReadBundle(ctx, src.bundle, src.bundleS3, src.bundleDigest)
	if err != nil {
		return nil, cause, err
	}
	bundle, err := fragile.Open(sealed, key)
	if err != nil {
		return nil, "", fmt.Errorf("bundle %s: %w", src.bundle, err)
	}
	return bundle, "", nil
}

func verifyFrom(ctx context.Context, src verifySources) fragile.VerifyReport {
	failed := func(err error, cause string) fragile.VerifyReport {
		return fragile.VerifyReport{Result: fragile.ResultError, Message: err.Error(), Cause: cause}
	}
	if src.model == "" || src.bundle == "" || src.key == "" {
		return failed(errors.New("--model (or --endpoint), --bundle and --key are required"), "")
	}
	bundle, cause, err := openBundle(ctx, src)
	if err != nil {
		return failed(err, cause)
	}
	model, err := readModelFrom(ctx, src.model, src.modelS3)
	if err != nil {
		return failed(err, modelCause(err))
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
	if r.Endpoint != "" {
		fmt.Printf(" (served by %s; %d requests; %.0f ms)\n", r.Endpoint, r.Requests, 1000*r.DurationSeconds)
		return
	}
	digest := "file digest differs from the watermarked file"
	if r.DigestMatches {
		digest = "file digest matches the watermarked file"
	}
	fmt.Printf(" (%s; %.0f ms)\n", digest, 1000*r.DurationSeconds)
}
