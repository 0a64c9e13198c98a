package storage

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Names of the S3 settings: data keys of the credentials Secret (mounted as a directory of
// files) and, outside a cluster, environment variables of the same names as the AWS tools use.
const (
	KeyEndpoint        = "AWS_ENDPOINT_URL"      // https://HOST[:PORT] or http://HOST[:PORT]
	KeyAccessKeyID     = "AWS_ACCESS_KEY_ID"     //
	KeySecretAccessKey = "AWS_SECRET_ACCESS_KEY" //
	KeyRegion          = "AWS_REGION"            // optional; default us-east-1
	KeyCA              = "ca.crt"                // optional PEM bundle trusted for an https endpoint
	EnvCA              = "AWS_CA_BUNDLE"         // outside a cluster: the path of that PEM bundle
)

// S3Config says how to reach an S3-compatible store.
type S3Config struct {
	Endpoint        *url.URL
	AccessKeyID     string
	SecretAccessKey string
	Region          string
	CA              []byte // PEM; nil: the system's roots
	// Source names where the settings came from, for error messages (never the values).
	Source string
}

// LoadS3Config reads the settings from dir, one file per key as a mounted Secret has them, or
// from the environment when dir is empty.
func LoadS3Config(dir string) (S3Config, error) {
	get := func(key string) (string, error) { return strings.TrimSpace(os.Getenv(key)), nil }
	source := "the environment"
	if dir != "" {
		source = "S3 credentials " + dir
		get = func(key string) (string, error) {
			b, err := os.ReadFile(filepath.Join(dir, key))
			if errors.Is(err, os.ErrNotExist) {
				return "", nil
			}
			return strings.TrimSpace(string(b)), err
		}
	}
	cfg := S3Config{Source: source}
	values := map[string]*string{KeyAccessKeyID: &cfg.AccessKeyID, KeySecretAccessKey: &cfg.SecretAccessKey, KeyRegion: &cfg.Region}
	for key, dst := range values {
		v, err := get(key)
		if err != nil {
			return cfg, fmt.Errorf("%s: reading %s: %w", source, key, err)
		}
		*dst = v
	}
	endpoint, err := get(KeyEndpoint)
	if err != nil {
		return cfg, fmt.Errorf("%s: reading %s: %w", source, KeyEndpoint, err)
	}
	if endpoint == "" || cfg.AccessKeyID == "" || cfg.SecretAccessKey == "" {
		return cfg, fmt.Errorf("%s must set %s, %s and %s", source, KeyEndpoint, KeyAccessKeyID, KeySecretAccessKey)
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return cfg, fmt.Errorf("%s: %s %q must be http(s)://HOST[:PORT]", source, KeyEndpoint, endpoint)
	}
	cfg.Endpoint = u
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if dir != "" {
		if b, err := os.ReadFile(filepath.Join(dir, KeyCA)); err == nil {
			cfg.CA = b
		} else if !errors.Is(err, os.ErrNotExist) {
			return cfg, fmt.Errorf("%s: reading %s: %w", source, KeyCA, err)
		}
	} else if path := os.Getenv(EnvCA); path != "" {
		if cfg.CA, err = os.ReadFile(path); err != nil {
			return cfg, fmt.Errorf("%s %s: %w", EnvCA, path, err)
		}
	}
	return cfg, nil
}

// S3Object is a parsed s3://BUCKET/KEY.
type S3Object struct{ Bucket, Key string }

func (o S3Object) String() string { return "s3://" + o.Bucket + "/" + o.Key }

// IsS3 reports whether ref is an s3:// URI.
func IsS3(ref string) bool { return strings.HasPrefix(ref, "s3://") }

// ParseS3 parses s3://BUCKET/KEY.
func ParseS3(ref string) (S3Object, error) {
	bucket, key, ok := strings.Cut(strings.TrimPrefix(ref, "s3://"), "/")
	if !IsS3(ref) || !ok || bucket == "" || key == "" || strings.HasSuffix(key, "/") {
		return S3Object{}, fmt.Errorf("%q is not s3://BUCKET/KEY", ref)
	}
	return S3Object{Bucket: bucket, Key: key}, nil
}

// Cause classifies a storage failure so that the operator can give it a condition reason a
// person can act on.
type Cause string

const (
	CauseUnreachable  Cause = "Unreachable"  // no connection, TLS failure, timeout
	CauseAccessDenied Cause = "AccessDenied" // credentials refused or not allowed
	CauseNotFound     Cause = "NotFound"     // no such bucket or object
)

// Error is a storage failure with its cause.
type Error struct {
	Cause Cause
	Err   error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// CauseOf returns the cause of err, or "" when err is not a classified storage failure.
func CauseOf(err error) Cause {
	var e *Error
	if errors.As(err, &e) {
		return e.Cause
	}
	return ""
}

// requestTimeout bounds one S3 request; a model of a few hundred MB on a slow link fits.
const requestTimeout = 10 * time.Minute

func (c S3Config) client() (*minio.Client, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DialContext = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	transport.ResponseHeaderTimeout = 30 * time.Second
	if len(c.CA) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(c.CA) {
			return nil, fmt.Errorf("%s: %s holds no PEM certificate", c.Source, KeyCA)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return minio.New(c.Endpoint.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(c.AccessKeyID, c.SecretAccessKey, ""),
		Secure:       c.Endpoint.Scheme == "https",
		Region:       c.Region,
		Transport:    transport,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   3,
	})
}

// Get reads an object, at most maxBytes of it.
func Get(parent context.Context, cfg S3Config, obj S3Object, maxBytes int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(parent, requestTimeout)
	defer cancel()
	mc, err := cfg.client()
	if err != nil {
		return nil, err
	}
	r, err := mc.GetObject(ctx, obj.Bucket, obj.Key, minio.GetObjectOptions{})
	if err != nil {
		return nil, cfg.classify(parent, obj, "reading", err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxBytes+1))
	if err != nil {
		return nil, cfg.classify(parent, obj, "reading", err)
	}
	if int64(len(data)) > maxBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", obj, maxBytes)
	}
	return data, nil
}

// Put writes an object.
func Put(parent context.Context, cfg S3Config, obj S3Object, data []byte) error {
	ctx, cancel := context.WithTimeout(parent, requestTimeout)
	defer cancel()
	mc, err := cfg.client()
	if err != nil {
		return err
	}
	_, err = mc.PutObject(ctx, obj.Bucket, obj.Key, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return cfg.classify(parent, obj, "writing", err)
	}
	return nil
}

// GetRef reads at most limit bytes of the object at ref ("s3://BUCKET/KEY") with the settings
// in s3Dir (see LoadS3Config).
func GetRef(ctx context.Context, ref, s3Dir string, limit int64) ([]byte, error) {
	obj, err := ParseS3(ref)
	if err != nil {
		return nil, err
	}
	cfg, err := LoadS3Config(s3Dir)
	if err != nil {
		return nil, err
	}
	return Get(ctx, cfg, obj, limit)
}

// MakeBucket creates a bucket; one that exists and is ours is not an error. The operator
// never creates buckets (the Jobs write into the one spec.bundle.uri names); tests and demos do.
func MakeBucket(parent context.Context, cfg S3Config, bucket string) error {
	ctx, cancel := context.WithTimeout(parent, requestTimeout)
	defer cancel()
	mc, err := cfg.client()
	if err != nil {
		return err
	}
	err = mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: cfg.Region})
	if code := minio.ToErrorResponse(err).Code; err != nil && code != "BucketAlreadyOwnedByYou" {
		return cfg.classify(parent, S3Object{Bucket: bucket}, "creating bucket", err)
	}
	return nil
}

// Delete removes an object; a missing one is not an error.
func Delete(parent context.Context, cfg S3Config, obj S3Object) error {
	ctx, cancel := context.WithTimeout(parent, requestTimeout)
	defer cancel()
	mc, err := cfg.client()
	if err != nil {
		return err
	}
	if err := mc.RemoveObject(ctx, obj.Bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil {
		if e := cfg.classify(parent, obj, "deleting", err); CauseOf(e) != CauseNotFound {
			return e
		}
	}
	return nil
}

// classify turns a client error into an Error whose message says what to check.
// A cancelled parent context (SIGTERM) is reported as such, not as an unreachable endpoint.
func (c S3Config) classify(parent context.Context, obj S3Object, doing string, err error) error {
	if parent.Err() != nil {
		return fmt.Errorf("%s %s: %w", doing, obj, parent.Err())
	}
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "NoSuchKey", "NoSuchBucket":
		return &Error{CauseNotFound, fmt.Errorf("%s %s: %s does not exist at %s (%s)", doing, obj, objectOrBucket(resp.Code), c.Endpoint.Redacted(), resp.Code)}
	// versitygw answers an unknown access key with 404 XAdminUserNotFound, AWS with 403.
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "AllAccessDisabled",
		"XAdminUserNotFound":
		return &Error{CauseAccessDenied, fmt.Errorf("%s %s: %s refused the credentials from %s (%s: %s); check %s and %s",
			doing, obj, c.Endpoint.Redacted(), c.Source, resp.Code, resp.Message, KeyAccessKeyID, KeySecretAccessKey)}
	}
	if resp.StatusCode == http.StatusNotFound {
		return &Error{CauseNotFound, fmt.Errorf("%s %s: not found at %s (%s %s)", doing, obj, c.Endpoint.Redacted(), resp.Code, resp.Message)}
	}
	if resp.StatusCode == http.StatusForbidden {
		return &Error{CauseAccessDenied, fmt.Errorf("%s %s: %s answered 403 Forbidden for the credentials from %s",
			doing, obj, c.Endpoint.Redacted(), c.Source)}
	}
	var netErr net.Error
	var tlsErr *tls.CertificateVerificationError
	var urlErr *url.Error
	if errors.As(err, &netErr) || errors.As(err, &tlsErr) || errors.As(err, &urlErr) || resp.Code == "" {
		hint := ""
		if errors.As(err, &tlsErr) || strings.Contains(err.Error(), "certificate") {
			hint = fmt.Sprintf("; if the endpoint uses a private CA, put its certificate in %s", KeyCA)
		}
		return &Error{CauseUnreachable, fmt.Errorf("%s %s: S3 endpoint %s is unreachable: %v%s", doing, obj, c.Endpoint.Redacted(), err, hint)}
	}
	return fmt.Errorf("%s %s at %s: %s: %s", doing, obj, c.Endpoint.Redacted(), resp.Code, resp.Message)
}

func objectOrBucket(code string) string {
	if code == "NoSuchBucket" {
		return "the bucket"
	}
	return "the object"
}
