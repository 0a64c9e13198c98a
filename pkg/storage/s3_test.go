package storage_test

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fragile-operator/fragile-operator/internal/s3test"
	"github.com/fragile-operator/fragile-operator/pkg/storage"
)

// TestS3RoundTrip runs against a real S3 server (versitygw on loopback, TLS from a private CA):
// an object larger than a Secret can hold goes in and comes back; each failure a person can act
// on comes back with its cause.
func TestS3RoundTrip(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket(t, "bundles")
	ctx := context.Background()
	cfg := srv.Config()
	obj := storage.S3Object{Bucket: "bundles", Key: "ns/mw/bundle"}
	data := bytes.Repeat([]byte("sealed-"), 300_000) // 2.1 MB, over a Secret's 1 MiB

	if err := storage.Put(ctx, cfg, obj, data); err != nil {
		t.Fatal(err)
	}
	got, err := storage.Get(ctx, cfg, obj, 1<<30)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get: %d bytes, %v; want the %d put", len(got), err, len(data))
	}
	if onDisk, err := os.ReadFile(filepath.Join(srv.Root, "bundles", "ns", "mw", "bundle")); err != nil || !bytes.Equal(onDisk, data) {
		t.Errorf("the POSIX backend does not hold the object as a file: %v", err)
	}
	if _, err := storage.Get(ctx, cfg, obj, 100); err == nil || !strings.Contains(err.Error(), "larger than 100 bytes") {
		t.Errorf("size limit: %v", err)
	}

	for name, tc := range map[string]struct {
		cfg   func(storage.S3Config) storage.S3Config
		obj   storage.S3Object
		cause storage.Cause
		say   string
	}{
		"missing object": {obj: storage.S3Object{Bucket: "bundles", Key: "gone"}, cause: storage.CauseNotFound, say: "does not exist"},
		"missing bucket": {obj: storage.S3Object{Bucket: "nobucket", Key: "k"}, cause: storage.CauseNotFound, say: "the bucket does not exist"},
		"wrong secret key": {cfg: func(c storage.S3Config) storage.S3Config { c.SecretAccessKey = "wrong"; return c },
			obj: obj, cause: storage.CauseAccessDenied, say: "refused the credentials"},
		"unknown access key": {cfg: func(c storage.S3Config) storage.S3Config { c.AccessKeyID = "nobody"; return c },
			obj: obj, cause: storage.CauseAccessDenied, say: "refused the credentials"},
		"nothing listening": {cfg: func(c storage.S3Config) storage.S3Config {
			c.Endpoint = &url.URL{Scheme: "https", Host: "127.0.0.1:1"}
			return c
		}, obj: obj, cause: storage.CauseUnreachable, say: "is unreachable"},
		"CA not trusted": {cfg: func(c storage.S3Config) storage.S3Config { c.CA = nil; return c },
			obj: obj, cause: storage.CauseUnreachable, say: "private CA"},
	} {
		t.Run(name, func(t *testing.T) {
			c := cfg
			if tc.cfg != nil {
				c = tc.cfg(cfg)
			}
			_, err := storage.Get(ctx, c, tc.obj, 1<<30)
			if storage.CauseOf(err) != tc.cause || !strings.Contains(err.Error(), tc.say) {
				t.Errorf("err %v (cause %q), want cause %q saying %q", err, storage.CauseOf(err), tc.cause, tc.say)
			}
			if err != nil && strings.Contains(err.Error(), srv.SecretKey) {
				t.Errorf("the error shows the secret key: %v", err)
			}
		})
	}

	if err := storage.Delete(ctx, cfg, obj); err != nil {
		t.Fatal(err)
	}
	if _, err := storage.Get(ctx, cfg, obj, 1<<30); storage.CauseOf(err) != storage.CauseNotFound {
		t.Errorf("after Delete: %v", err)
	}
	if err := storage.Delete(ctx, cfg, obj); err != nil {
		t.Errorf("deleting a missing object: %v", err)
	}
}

// TestLoadS3Config reads a mounted Secret's files and refuses incomplete ones by name.
func TestLoadS3Config(t *testing.T) {
	dir := t.TempDir()
	write := func(k, v string) {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(storage.KeyEndpoint, "https://s3.example:9000\n")
	write(storage.KeyAccessKeyID, "id")
	if _, err := storage.LoadS3Config(dir); err == nil || !strings.Contains(err.Error(), storage.KeySecretAccessKey) {
		t.Errorf("missing secret key: %v", err)
	}
	write(storage.KeySecretAccessKey, "secret")
	cfg, err := storage.LoadS3Config(dir)
	if err != nil || cfg.Endpoint.Host != "s3.example:9000" || cfg.Region != "us-east-1" || cfg.CA != nil {
		t.Fatalf("%+v %v", cfg, err)
	}
	write(storage.KeyEndpoint, "s3.example:9000")
	if _, err := storage.LoadS3Config(dir); err == nil || !strings.Contains(err.Error(), "must be http(s)://HOST[:PORT]") {
		t.Errorf("endpoint without scheme: %v", err)
	}
}

func TestParseS3(t *testing.T) {
	if o, err := storage.ParseS3("s3://b/a/b.onnx"); err != nil || o.Bucket != "b" || o.Key != "a/b.onnx" {
		t.Errorf("%+v %v", o, err)
	}
	for _, bad := range []string{"s3://b", "s3:///k", "s3://b/", "http://b/k", "s3://b/dir/"} {
		if _, err := storage.ParseS3(bad); err == nil {
			t.Errorf("ParseS3(%q) accepted", bad)
		}
	}
}
