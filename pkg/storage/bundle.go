package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/fragile-operator/fragile-operator/pkg/contract"
)

// A sealed bundle off-Secret is a file (on a PVC the operator mounts) or an S3 object. Either
// way the operator knows only its place and the digest the training Job recorded; the Jobs
// read, check and delete it with the functions here.

// MaxBundleBytes bounds a sealed bundle read from storage: 1,000 triggers of a 3x224x224
// model are 602 MB.
const MaxBundleBytes = 1 << 30

// Digest is "sha256:<hex>" of b, the form the operator records bundle and model digests in.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func digestString(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }

// ReadBundle reads a sealed bundle from a file or s3:// (settings from s3Dir, see
// LoadS3Config) and, when want is set, checks that its digest is the recorded one. The cause
// (contract.Cause*) says which failure a person can act on; none of them is tampering.
func ReadBundle(ctx context.Context, ref, s3Dir, want string) (data []byte, cause string, err error) {
	if IsS3(ref) {
		if data, err = GetRef(ctx, ref, s3Dir, MaxBundleBytes); err != nil {
			return nil, causeOf(err), fmt.Errorf("bundle: %w", err)
		}
	} else if data, err = os.ReadFile(ref); err != nil {
		cause := ""
		if os.IsNotExist(err) {
			cause = contract.CauseBundleNotFound
		}
		return nil, cause, fmt.Errorf("bundle file: %w", err)
	}
	if got := Digest(data); want != "" && got != want {
		return nil, contract.CauseBundleDigestMismatch, fmt.Errorf(
			"bundle %s has digest %s, not the %s recorded when it was sealed: it was replaced or damaged, so the "+
				"model cannot be verified against it (retrain by deleting the training Jobs)", ref, got, want)
	}
	return data, "", nil
}

// causeOf maps a storage failure reading or deleting a bundle to the report's cause.
func causeOf(err error) string {
	switch CauseOf(err) {
	case CauseUnreachable:
		return contract.CauseStorageUnreachable
	case CauseAccessDenied:
		return contract.CauseStorageAccessDenied
	case CauseNotFound:
		return contract.CauseBundleNotFound
	}
	return ""
}

// ReclaimBundle deletes the sealed bundle at ref (a file, or s3://BUCKET/KEY with the settings
// in s3Dir) when its bytes have digest want, which must be set: bytes with another digest
// belong to another writer, or to another resource sharing the place, and are kept. Nothing at
// ref is "absent", not an error, so a retried cleanup converges.
//
// The digest check and the delete are two requests: a writer that replaces the object between
// them loses its bytes. The operator stops the resource's training Jobs before it starts a
// cleanup, so only a writer outside the operator can race it.
func ReclaimBundle(ctx context.Context, ref, s3Dir, want string) contract.CleanupReport {
	start := time.Now()
	rep := reclaim(ctx, ref, s3Dir, want)
	rep.DurationSeconds = time.Since(start).Seconds()
	return rep
}

func reclaim(ctx context.Context, ref, s3Dir, want string) contract.CleanupReport {
	failed := func(err error) contract.CleanupReport {
		rep := contract.CleanupReport{Result: contract.CleanupError, Message: err.Error(), Cause: causeOf(err)}
		if rep.Cause == contract.CauseBundleNotFound {
			rep.Cause = ""
		}
		return rep
	}
	if want == "" {
		return failed(errors.New("no recorded digest: refusing to delete bytes nobody vouched for"))
	}
	if !IsS3(ref) {
		got, size, err := fileDigest(ref)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return contract.CleanupReport{Result: contract.CleanupAbsent, Message: "no file " + ref}
		case err != nil:
			return failed(fmt.Errorf("bundle file: %w", err))
		case got != want:
			return kept(ref, got, want, size)
		}
		if err := os.Remove(ref); err != nil && !errors.Is(err, os.ErrNotExist) {
			return failed(fmt.Errorf("deleting bundle file: %w", err))
		}
		return contract.CleanupReport{Result: contract.CleanupDeleted, Digest: got, Bytes: size}
	}
	obj, err := ParseS3(ref)
	if err != nil {
		return failed(err)
	}
	cfg, err := LoadS3Config(s3Dir)
	if err != nil {
		return failed(err)
	}
	got, size, err := ObjectDigest(ctx, cfg, obj)
	switch {
	case CauseOf(err) == CauseNotFound:
		return contract.CleanupReport{Result: contract.CleanupAbsent, Message: err.Error()}
	case err != nil:
		return failed(err)
	case got != want:
		return kept(ref, got, want, size)
	}
	if err := Delete(ctx, cfg, obj); err != nil {
		return failed(err)
	}
	return contract.CleanupReport{Result: contract.CleanupDeleted, Digest: got, Bytes: size}
}

func kept(ref, got, want string, size int64) contract.CleanupReport {
	return contract.CleanupReport{Result: contract.CleanupKept, Digest: got, Bytes: size, Message: fmt.Sprintf(
		"%s holds %d bytes with digest %s, not the recorded %s: not the sealed bundle, so it was left alone", ref, size, got, want)}
}

func fileDigest(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return digestString(h), n, nil
}

// ObjectDigest streams an object through SHA-256 without holding it in memory, and returns
// its digest and size.
func ObjectDigest(parent context.Context, cfg S3Config, obj S3Object) (string, int64, error) {
	ctx, cancel := context.WithTimeout(parent, requestTimeout)
	defer cancel()
	mc, err := cfg.client()
	if err != nil {
		return "", 0, err
	}
	r, err := mc.GetObject(ctx, obj.Bucket, obj.Key, minio.GetObjectOptions{})
	if err != nil {
		return "", 0, cfg.classify(parent, obj, "reading", err)
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", 0, cfg.classify(parent, obj, "reading", err)
	}
	return digestString(h), n, nil
}
