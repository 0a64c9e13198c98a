package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fragile-operator/fragile-operator/internal/cli"
	"github.com/fragile-operator/fragile-operator/pkg/contract"
	"github.com/fragile-operator/fragile-operator/pkg/storage"
)

// This file is where the Jobs' models and bundles live besides local files and http(s) URLs:
// s3://BUCKET/KEY through pkg/storage, with the endpoint and credentials read from a
// directory (the operator mounts the S3 Secret there; empty: the AWS_* environment variables).
// A pvc:// location reaches `fragile` as a plain path: the operator mounts the claim.

// readModelFrom reads a model from a file, an http(s) URL or s3://.
func readModelFrom(ctx context.Context, ref, s3Dir string) ([]byte, error) {
	if !storage.IsS3(ref) {
		return cli.ReadModel(ctx, ref)
	}
	data, err := storage.GetRef(ctx, ref, s3Dir, cli.MaxModelBytes)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return data, nil
}

// writeBundleTo stores a sealed bundle in a file (creating its directory, as on a fresh PVC)
// or in s3://, and returns its digest.
func writeBundleTo(ctx context.Context, ref, s3Dir string, sealed []byte) (string, error) {
	if storage.IsS3(ref) {
		obj, err := storage.ParseS3(ref)
		if err != nil {
			return "", err
		}
		cfg, err := storage.LoadS3Config(s3Dir)
		if err != nil {
			return "", err
		}
		if err := storage.Put(ctx, cfg, obj, sealed); err != nil {
			return "", err
		}
		return storage.Digest(sealed), nil
	}
	if err := os.MkdirAll(filepath.Dir(ref), 0o755); err != nil {
		return "", fmt.Errorf("bundle directory: %w", err)
	}
	// Write then rename, so a verification never reads half a bundle.
	tmp := ref + ".partial"
	if err := os.WriteFile(tmp, sealed, 0o600); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, ref); err != nil {
		return "", err
	}
	return storage.Digest(sealed), nil
}

// modelCause maps a storage failure reading the model to the report's cause; a missing model
// has no cause of its own (the message names it).
func modelCause(err error) string {
	switch storage.CauseOf(err) {
	case storage.CauseUnreachable:
		return contract.CauseStorageUnreachable
	case storage.CauseAccessDenied:
		return contract.CauseStorageAccessDenied
	}
	return ""
}
