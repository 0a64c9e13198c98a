package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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

// maxBundleBytes bounds a sealed bundle read from storage: 1,000 triggers of a 3x224x224
// model are 602 MB.
const maxBundleBytes = 1 << 30

// readModelFrom reads a model from a file, an http(s) URL or s3://.
func readModelFrom(ctx context.Context, ref, s3Dir string) ([]byte, error) {
	if !storage.IsS3(ref) {
		return cli.ReadModel(ctx, ref)
	}
	data, err := readS3(ctx, ref, s3Dir, cli.MaxModelBytes)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return data, nil
}

// readBundleFrom reads a sealed bundle from a file or s3:// and, when want is set, checks that
// its digest is the one recorded when it was sealed. The error's cause says which problem a
// person can act on; none of them is tampering.
func readBundleFrom(ctx context.Context, ref, s3Dir, want string) ([]byte, string, error) {
	var data []byte
	var err error
	if storage.IsS3(ref) {
		data, err = readS3(ctx, ref, s3Dir, maxBundleBytes)
		if err != nil {
			return nil, bundleCause(err), fmt.Errorf("bundle: %w", err)
		}
	} else if data, err = os.ReadFile(ref); err != nil {
		cause := ""
		if os.IsNotExist(err) {
			cause = contract.CauseBundleNotFound
		}
		return nil, cause, fmt.Errorf("bundle file: %w", err)
	}
	if got := digestOf(data); want != "" && got != want {
		return nil, contract.CauseBundleDigestMismatch, fmt.Errorf(
			"bundle %s has digest %s, not the %s recorded when it was sealed: it was replaced or damaged, so the "+
				"model cannot be verified against it (retrain by deleting the training Jobs)", ref, got, want)
	}
	return data, "", nil
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
		return digestOf(sealed), nil
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
	return digestOf(sealed), nil
}

func readS3(ctx context.Context, ref, s3Dir string, limit int64) ([]byte, error) {
	obj, err := storage.ParseS3(ref)
	if err != nil {
		return nil, err
	}
	cfg, err := storage.LoadS3Config(s3Dir)
	if err != nil {
		return nil, err
	}
	return storage.Get(ctx, cfg, obj, limit)
}

// bundleCause maps a storage failure reading the bundle to the report's cause.
func bundleCause(err error) string {
	switch storage.CauseOf(err) {
	case storage.CauseUnreachable:
		return contract.CauseStorageUnreachable
	case storage.CauseAccessDenied:
		return contract.CauseStorageAccessDenied
	case storage.CauseNotFound:
		return contract.CauseBundleNotFound
	}
	return ""
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

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
