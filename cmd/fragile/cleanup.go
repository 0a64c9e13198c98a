package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/fragile-operator/fragile-operator/pkg/contract"
	"github.com/fragile-operator/fragile-operator/pkg/storage"
)

func init() { subcommands["cleanup"] = cleanup }

// cleanup deletes a sealed bundle stored off-Secret, but only when its bytes have the digest
// recorded when it was sealed: what the operator's cleanup Job runs when a ModelWatermark with
// spec.bundle.reclaimPolicy Delete goes. Exit status 0 when the outcome is final (deleted,
// already absent, or kept because the bytes are another writer's), 2 when it could not
// complete (unreachable storage, refused credentials), 3 when stopped.
func cleanup(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("cleanup", flag.ContinueOnError)
	bundle := fs.String("bundle", "", "the sealed bundle to delete: a file or s3://BUCKET/KEY (required)")
	s3Dir := fs.String("bundle-s3-credentials", "", "directory of S3 settings for an s3:// --bundle (default: AWS_* environment)")
	digest := fs.String("bundle-digest", "", `"sha256:<hex>" the bundle must have to be deleted (required)`)
	asJSON := fs.Bool("json", false, "print one JSON object instead of text")
	report := fs.String("report", "", "also write the JSON report here (a Job's termination message path)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	var r contract.CleanupReport
	if *bundle == "" || *digest == "" {
		r = contract.CleanupReport{Result: contract.CleanupError, Message: "--bundle and --bundle-digest are required"}
	} else {
		r = storage.ReclaimBundle(ctx, *bundle, *s3Dir, *digest)
	}
	code := r.Result.ExitCode()
	if r.Result == contract.CleanupError && ctx.Err() != nil {
		r.Message = stopped(ctx, nil, "the bundle may still be there").Error()
		code = exitStopped
	}
	if err := writeReport(*report, r); err != nil {
		fmt.Fprintf(os.Stderr, "fragile cleanup: writing the report: %v\n", err)
	}
	if *asJSON {
		data, _ := json.Marshal(r)
		fmt.Println(string(data))
		return code
	}
	switch r.Result {
	case contract.CleanupDeleted:
		fmt.Printf("deleted %s (%d bytes, %s)\n", *bundle, r.Bytes, r.Digest)
	case contract.CleanupAbsent:
		fmt.Printf("nothing to delete: %s\n", r.Message)
	case contract.CleanupKept:
		fmt.Printf("kept: %s\n", r.Message)
	default:
		fmt.Fprintf(os.Stderr, "fragile cleanup: %s\n", r.Message)
	}
	return code
}
