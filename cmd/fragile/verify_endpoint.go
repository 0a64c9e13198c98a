package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/endpoint"
)

// endpointFlags are the flags of `fragile verify --endpoint`: a live model served over
// the Open Inference Protocol instead of a model file.
type endpointFlags struct {
	url, model, version string
	timeout             time.Duration
	retries             int
	concurrency         int
	batch               int
	decoys              int
	caFile              string
	tokenFile           string
	authDir             string
	headers             headerFlags
}

func (f *endpointFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "endpoint", "", "base URL of an Open Inference Protocol (KServe V2) server, instead of --model")
	fs.StringVar(&f.model, "model-name", "", "with --endpoint: the served model's name (required)")
	fs.StringVar(&f.version, "model-version", "", "with --endpoint: the model version (default: the server's)")
	fs.DurationVar(&f.timeout, "timeout", endpoint.DefaultTimeout, "with --endpoint: timeout of each request")
	fs.IntVar(&f.retries, "retries", endpoint.DefaultRetries, "with --endpoint: retries of a request that failed transiently (no connection, timeout, 429, 5xx)")
	fs.IntVar(&f.concurrency, "concurrency", endpoint.DefaultConcurrency, "with --endpoint: inference requests in flight at most")
	fs.IntVar(&f.batch, "batch-size", endpoint.DefaultBatchSize, "with --endpoint: examples per request when the batch dimension is variable")
	fs.IntVar(&f.decoys, "decoys", endpoint.DefaultDecoys, "with --endpoint: decoy examples mixed among the triggers (0: none)")
	fs.StringVar(&f.caFile, "ca-file", "", "with --endpoint: PEM bundle of the CA that signed the server's certificate")
	fs.StringVar(&f.tokenFile, "token-file", "", "with --endpoint: file holding a bearer token")
	fs.StringVar(&f.authDir, "auth-dir", "", "with --endpoint: directory of credentials (a mounted Secret): file 'token' is a bearer token, every other file a header named after it")
	fs.Var(&f.headers, "header", "with --endpoint: 'Name: value' header sent with every request (repeatable)")
}

// headerFlags collects repeated --header flags.
type headerFlags []string

func (h *headerFlags) String() string     { return fmt.Sprintf("%d headers", len(*h)) }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

// config turns the flags into a client configuration, reading credential files.
func (f *endpointFlags) config() (endpoint.Config, error) {
	cfg := endpoint.Config{
		URL: f.url, Model: f.model, Version: f.version, Timeout: f.timeout,
		Retries: f.retries, Concurrency: f.concurrency, BatchSize: f.batch, Headers: http.Header{},
	}
	if f.retries == 0 {
		cfg.Retries = -1 // the flag's 0 means none, the Config's 0 the default
	}
	if f.model == "" {
		return cfg, errors.New("--endpoint needs --model-name")
	}
	for _, h := range f.headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return cfg, fmt.Errorf("--header %q: want 'Name: value'", name)
		}
		cfg.Headers.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	if f.tokenFile != "" {
		token, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return cfg, fmt.Errorf("token file: %w", err)
		}
		cfg.Headers.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	}
	if f.authDir != "" {
		if err := readAuthDir(f.authDir, cfg.Headers); err != nil {
			return cfg, err
		}
	}
	if f.caFile != "" {
		ca, err := os.ReadFile(f.caFile)
		if err != nil {
			return cfg, fmt.Errorf("CA file: %w", err)
		}
		cfg.CACertPEM = ca
	}
	return cfg, nil
}

// readAuthDir reads a mounted Secret: "token" becomes a bearer token, every other file a
// header of its name. Entries starting with "." (the kubelet's ..data links) are skipped.
// Errors name files, never their content.
func readAuthDir(dir string, h http.Header) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("credentials directory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			if e.IsDir() {
				continue
			}
			return fmt.Errorf("credentials file %s: %w", name, err)
		}
		value := strings.TrimSpace(string(data))
		if strings.ContainsAny(value, "\r\n") {
			return fmt.Errorf("credentials file %s: a header value must be one line", name)
		}
		if name == "token" {
			h.Set("Authorization", "Bearer "+value)
			continue
		}
		h.Set(name, value)
	}
	return nil
}

// verifyEndpoint opens the bundle and verifies the live model against it.
func verifyEndpoint(ctx context.Context, f *endpointFlags, src verifySources) fragile.VerifyReport {
	failed := func(err error) fragile.VerifyReport {
		return fragile.VerifyReport{Result: fragile.ResultError, Message: err.Error()}
	}
	cfg, err := f.config()
	if err != nil {
		return failed(err)
	}
	bundle, cause, err := openBundle(ctx, src)
	if err != nil {
		r := failed(err)
		r.Cause = cause
		return r
	}
	c, err := endpoint.New(cfg, nil)
	if err != nil {
		return failed(err)
	}
	decoys := f.decoys
	if decoys == 0 {
		decoys = -1 // the flag's 0 means none
	}
	return endpoint.Verify(ctx, c, bundle, endpoint.VerifyOptions{Decoys: decoys})
}
