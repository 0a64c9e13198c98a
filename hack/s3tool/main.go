// Command s3tool is the few S3 requests the demos make besides the operator's Jobs, through
// pkg/storage and the settings the AWS tools read (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, optionally AWS_REGION and AWS_CA_BUNDLE):
//
//	s3tool mb BUCKET...          create buckets
//	s3tool put FILE s3://B/K     upload a file
//	s3tool stat s3://B/K         print size and sha256 of an object; exit 1 when it does not exist
//
// hack/demo-s3.sh runs it against the versitygw it starts.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/fragile-operator/fragile-operator/pkg/storage"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "s3tool:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: s3tool mb BUCKET... | put FILE s3://B/K | stat s3://B/K")
	}
	cfg, err := storage.LoadS3Config("")
	if err != nil {
		return err
	}
	switch args[0] {
	case "mb":
		for _, b := range args[1:] {
			if err := storage.MakeBucket(ctx, cfg, b); err != nil {
				return err
			}
		}
		return nil
	case "put":
		if len(args) != 3 {
			return fmt.Errorf("usage: s3tool put FILE s3://B/K")
		}
		obj, err := storage.ParseS3(args[2])
		if err != nil {
			return err
		}
		data, err := os.ReadFile(args[1])
		if err != nil {
			return err
		}
		return storage.Put(ctx, cfg, obj, data)
	case "stat":
		obj, err := storage.ParseS3(args[1])
		if err != nil {
			return err
		}
		digest, size, err := storage.ObjectDigest(ctx, cfg, obj)
		if err != nil {
			return err
		}
		fmt.Printf("%s %d bytes %s\n", obj, size, digest)
		return nil
	}
	return fmt.Errorf("unknown command %q", args[0])
}
