package storage_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fragile-operator/fragile-operator/internal/s3test"
	"github.com/fragile-operator/fragile-operator/pkg/contract"
	"github.com/fragile-operator/fragile-operator/pkg/storage"
)

// TestReclaimBundleFile: a bundle file with the recorded digest is deleted; one with other
// bytes is kept; a missing one is absent; no digest refuses to delete anything.
func TestReclaimBundleFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "ns", "mnist.fwm")
	sealed := bytes.Repeat([]byte("sealed"), 1000)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(append(append([]byte{}, sealed...), '!'))
	want := storage.Digest(sealed)
	if r := storage.ReclaimBundle(ctx, path, "", want); r.Result != contract.CleanupKept || r.Digest == want ||
		!strings.Contains(r.Message, "not the recorded "+want) {
		t.Errorf("other bytes: %+v", r)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("other bytes were deleted: %v", err)
	}
	if r := storage.ReclaimBundle(ctx, path, "", ""); r.Result != contract.CleanupError || r.Result.ExitCode() != 2 {
		t.Errorf("no digest: %+v", r)
	}
	write(sealed)
	if r := storage.ReclaimBundle(ctx, path, "", want); r.Result != contract.CleanupDeleted || r.Digest != want || r.Bytes != int64(len(sealed)) {
		t.Errorf("the sealed bundle: %+v", r)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the bundle file is still there: %v", err)
	}
	if r := storage.ReclaimBundle(ctx, path, "", want); r.Result != contract.CleanupAbsent || r.Result.ExitCode() != 0 {
		t.Errorf("again: %+v", r)
	}
}

// TestReclaimAndReadBundleS3 runs against the real S3 server: reading checks the digest and
// classifies each failure; reclaiming keeps other bytes, deletes the sealed ones, and says
// which failure stopped it, without ever naming the secret key.
func TestReclaimAndReadBundleS3(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket(t, "bundles")
	ctx := context.Background()
	cfg := srv.Config()
	creds := t.TempDir()
	writeCreds := func(data map[string][]byte) {
		for k, v := range data {
			if err := os.WriteFile(filepath.Join(creds, k), v, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	writeCreds(srv.SecretData())
	obj := storage.S3Object{Bucket: "bundles", Key: "ns/mnist"}
	sealed := bytes.Repeat([]byte("sealed-"), 200_000) // 1.4 MB
	want := storage.Digest(sealed)
	if err := storage.Put(ctx, cfg, obj, sealed); err != nil {
		t.Fatal(err)
	}
	if d, n, err := storage.ObjectDigest(ctx, cfg, obj); err != nil || d != want || n != int64(len(sealed)) {
		t.Fatalf("ObjectDigest: %s %d %v", d, n, err)
	}
	if b, cause, err := storage.ReadBundle(ctx, obj.String(), creds, want); err != nil || cause != "" || !bytes.Equal(b, sealed) {
		t.Fatalf("ReadBundle: %d bytes, %q, %v", len(b), cause, err)
	}
	if _, cause, err := storage.ReadBundle(ctx, obj.String(), creds, storage.Digest([]byte("x"))); cause != contract.CauseBundleDigestMismatch {
		t.Errorf("ReadBundle with another digest: %q %v", cause, err)
	}

	// Failures stop the cleanup with their cause; the object stays.
	writeCreds(map[string][]byte{storage.KeySecretAccessKey: []byte("not-the-secret")})
	if _, cause, _ := storage.ReadBundle(ctx, obj.String(), creds, want); cause != contract.CauseStorageAccessDenied {
		t.Errorf("ReadBundle with a wrong secret: cause %q", cause)
	}
	r := storage.ReclaimBundle(ctx, obj.String(), creds, want)
	if r.Result != contract.CleanupError || r.Cause != contract.CauseStorageAccessDenied || strings.Contains(r.Message, srv.SecretKey) {
		t.Errorf("wrong secret: %+v", r)
	}
	writeCreds(map[string][]byte{storage.KeySecretAccessKey: []byte(srv.SecretKey), storage.KeyEndpoint: []byte("https://127.0.0.1:1")})
	if r := storage.ReclaimBundle(ctx, obj.String(), creds, want); r.Result != contract.CleanupError || r.Cause != contract.CauseStorageUnreachable {
		t.Errorf("unreachable: %+v", r)
	}
	writeCreds(srv.SecretData())

	// Other bytes are kept, the sealed ones deleted, then there is nothing.
	other := append(append([]byte{}, sealed...), 0)
	if err := storage.Put(ctx, cfg, obj, other); err != nil {
		t.Fatal(err)
	}
	if r := storage.ReclaimBundle(ctx, obj.String(), creds, want); r.Result != contract.CleanupKept || r.Digest != storage.Digest(other) {
		t.Errorf("other bytes: %+v", r)
	}
	if got, err := storage.Get(ctx, cfg, obj, 1<<30); err != nil || !bytes.Equal(got, other) {
		t.Fatalf("the other writer's object is gone: %v", err)
	}
	if err := storage.Put(ctx, cfg, obj, sealed); err != nil {
		t.Fatal(err)
	}
	if r := storage.ReclaimBundle(ctx, obj.String(), creds, want); r.Result != contract.CleanupDeleted || r.Bytes != int64(len(sealed)) {
		t.Errorf("the sealed bundle: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(srv.Root, "bundles", "ns", "mnist")); !os.IsNotExist(err) {
		t.Errorf("the object's file is still in the server's backend: %v", err)
	}
	if r := storage.ReclaimBundle(ctx, obj.String(), creds, want); r.Result != contract.CleanupAbsent {
		t.Errorf("again: %+v", r)
	}
	if r := storage.ReclaimBundle(ctx, "s3://nobucket/k", creds, want); r.Result != contract.CleanupAbsent {
		t.Errorf("missing bucket: %+v", r)
	}
	if _, cause, _ := storage.ReadBundle(ctx, obj.String(), creds, want); cause != contract.CauseBundleNotFound {
		t.Errorf("ReadBundle of a deleted bundle: cause %q", cause)
	}
}
