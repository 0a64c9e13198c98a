package endpoint

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/oip"
)

// Defaults for the zero values of Config.
const (
	DefaultTimeout          = 10 * time.Second
	DefaultRetries          = 2
	DefaultBackoff          = 250 * time.Millisecond
	DefaultConcurrency      = 4
	DefaultBatchSize        = 16
	DefaultMaxResponseBytes = 8 << 20
	// maxMetadataBytes bounds health, metadata and error bodies: none is legitimately large.
	maxMetadataBytes = 1 << 20
)

// Config says how to reach one model on an Open Inference Protocol server.
type Config struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:8080 or
	// https://mnist.models.svc; a path prefix is kept (/v2/... is appended to it).
	URL string
	// Model and Version name the model; an empty Version addresses the server's default.
	Model, Version string

	// Timeout bounds each HTTP request, retries included separately.
	Timeout time.Duration
	// Retries is how many times a request that failed transiently (no connection, a
	// timeout, 429 or 5xx) is sent again; negative means never.
	Retries int
	// Backoff is the delay before the first retry; it doubles for each later one and is
	// jittered by up to half its value.
	Backoff time.Duration
	// Concurrency bounds the inference requests in flight.
	Concurrency int
	// BatchSize bounds the examples per request when the model's batch dimension is
	// variable (-1).
	BatchSize int
	// MaxResponseBytes bounds each inference response body.
	MaxResponseBytes int64

	// Headers are sent with every request (an Authorization bearer token, an API key).
	// They are never logged or copied into errors.
	Headers http.Header
	// CACertPEM, when set, replaces the system roots for https URLs.
	CACertPEM []byte

	// Transport overrides the HTTP transport (tests); CACertPEM is then ignored.
	Transport http.RoundTripper
}

// Client talks to one model. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	model    string
	version  string
	cfg      Config
	http     *http.Client
	requests atomic.Int64

	mu     sync.Mutex
	jitter *rand.Rand // guarded by mu
}

// New checks cfg and prepares a client. jitter is the source of retry jitter; nil
// seeds one from the wall clock (jitter needs no secrecy and no reproducibility).
func New(cfg Config, jitter *rand.Rand) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("endpoint URL %q: want http(s)://HOST[:PORT][/PREFIX]", redact(cfg.URL))
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("endpoint URL %s: credentials, a query or a fragment do not belong in it; pass credentials as headers", redact(cfg.URL))
	}
	if !validName(cfg.Model) {
		return nil, fmt.Errorf("model name %q: want letters, digits, '.', '_' or '-'", cfg.Model)
	}
	if cfg.Version != "" && !validName(cfg.Version) {
		return nil, fmt.Errorf("model version %q: want letters, digits, '.', '_' or '-'", cfg.Version)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	cfg.Timeout = orDefault(cfg.Timeout, DefaultTimeout)
	if cfg.Retries == 0 {
		cfg.Retries = DefaultRetries
	} else if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	cfg.Backoff = orDefault(cfg.Backoff, DefaultBackoff)
	cfg.Concurrency = orDefault(cfg.Concurrency, DefaultConcurrency)
	cfg.BatchSize = orDefault(cfg.BatchSize, DefaultBatchSize)
	cfg.MaxResponseBytes = orDefault(cfg.MaxResponseBytes, DefaultMaxResponseBytes)

	transport := cfg.Transport
	if transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = cfg.Concurrency
		if len(cfg.CACertPEM) > 0 {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(cfg.CACertPEM) {
				return nil, errors.New("the endpoint CA bundle holds no PEM certificate")
			}
			t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		transport = t
	}
	if jitter == nil {
		now := uint64(time.Now().UnixNano())
		jitter = rand.New(rand.NewPCG(now, now>>17))
	}
	return &Client{
		base: u, model: cfg.Model, version: cfg.Version, cfg: cfg, jitter: jitter,
		// Redirects are not followed: a redirect could carry the headers to another host.
		http: &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
	}, nil
}

// validName accepts the model names and versions that need no escaping in a path.
func validName(s string) bool {
	if s == "" || len(s) > 253 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// String names the model's resource, without credentials: it goes into reports.
func (c *Client) String() string {
	return c.base.Scheme + "://" + c.base.Host + c.base.Path + oip.ModelPath(c.model, c.version, "")
}

// Requests is the number of HTTP requests sent so far, retries included.
func (c *Client) Requests() int { return int(c.requests.Load()) }

// ServerReady asks GET /v2/health/ready: nil when the server answers 200.
func (c *Client) ServerReady(ctx context.Context) error {
	return c.ready(ctx, "/v2/health/ready", "the server")
}

// ModelReady asks GET /v2/models/NAME[/versions/V]/ready: nil when it answers 200.
func (c *Client) ModelReady(ctx context.Context) error {
	return c.ready(ctx, oip.ModelPath(c.model, c.version, "/ready"), "model "+c.modelLabel())
}

func (c *Client) ready(ctx context.Context, path, what string) error {
	status, body, err := c.do(ctx, http.MethodGet, path, nil, maxMetadataBytes)
	var serr *statusError
	if errors.As(err, &serr) {
		return fmt.Errorf("%s is not ready: %w", what, err)
	}
	if err != nil {
		return err
	}
	switch {
	case status == http.StatusOK:
		return nil
	case status == http.StatusNotFound:
		return fmt.Errorf("%s: not found (404)%s", what, errorText(body))
	default:
		return fmt.Errorf("%s is not ready (%d %s)%s", what, status, http.StatusText(status), errorText(body))
	}
}

// Metadata fetches GET /v2/models/NAME[/versions/V].
func (c *Client) Metadata(ctx context.Context) (*oip.ModelMetadata, error) {
	status, body, err := c.do(ctx, http.MethodGet, oip.ModelPath(c.model, c.version, ""), nil, maxMetadataBytes)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("model %s metadata: answered %d %s%s", c.modelLabel(), status, http.StatusText(status), errorText(body))
	}
	var md oip.ModelMetadata
	if err := oip.ReadJSON(bytes.NewReader(body), maxMetadataBytes, &md); err != nil {
		return nil, fmt.Errorf("model %s metadata: %w", c.modelLabel(), err)
	}
	return &md, nil
}

// Infer sends one inference request and decodes the response.
func (c *Client) Infer(ctx context.Context, req *oip.InferRequest) (*oip.InferResponse, error) {
	payload, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding the request: %w", err)
	}
	status, body, err := c.do(ctx, http.MethodPost, oip.ModelPath(c.model, c.version, "/infer"), payload, c.cfg.MaxResponseBytes)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("inference on model %s: answered %d %s%s", c.modelLabel(), status, http.StatusText(status), errorText(body))
	}
	var resp oip.InferResponse
	if err := oip.ReadJSON(bytes.NewReader(body), c.cfg.MaxResponseBytes, &resp); err != nil {
		return nil, fmt.Errorf("inference on model %s: the response is %w", c.modelLabel(), err)
	}
	return &resp, nil
}

func (c *Client) modelLabel() string {
	if c.version != "" {
		return c.model + " version " + c.version
	}
	return c.model
}

// do sends one request with retries and returns the final status and body (at most
// limit bytes). Transient failures (no connection, a timeout, 429, 5xx) are retried
// with backoff; the last one's reason is returned when retries run out.
func (c *Client) do(ctx context.Context, method, path string, payload []byte, limit int64) (int, []byte, error) {
	var lastErr error
	for attempt := 0; ; attempt++ {
		status, body, err := c.once(ctx, method, path, payload, limit)
		if err == nil && status != http.StatusTooManyRequests && status < 500 {
			return status, body, nil
		}
		if err == nil {
			err = &statusError{what: method + " " + path, status: status, text: errorText(body)}
		}
		lastErr = err
		if !retryable(ctx, err) || attempt >= c.cfg.Retries {
			switch attempt {
			case 0:
			case 1:
				return 0, nil, fmt.Errorf("%w (after 1 retry)", lastErr)
			default:
				return 0, nil, fmt.Errorf("%w (after %d retries)", lastErr, attempt)
			}
			return 0, nil, lastErr
		}
		if c.sleep(ctx, attempt) != nil {
			return 0, nil, fmt.Errorf("verification cancelled: %w", ctx.Err())
		}
	}
}

// statusError is a 429 or 5xx answer that retries did not cure.
type statusError struct {
	what   string
	status int
	text   string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s answered %d %s%s", e.what, e.status, http.StatusText(e.status), e.text)
}

// retryable says whether sending again could help: not after cancellation, an
// oversized body or a certificate the client does not trust.
func retryable(ctx context.Context, err error) bool {
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	switch {
	case ctx.Err() != nil, errors.Is(err, oip.ErrTooLarge),
		errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify):
		return false
	}
	return true
}

func (c *Client) sleep(ctx context.Context, attempt int) error {
	d := c.cfg.Backoff << attempt
	c.mu.Lock()
	d += time.Duration(c.jitter.Int64N(int64(d)/2 + 1))
	c.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// once sends a single request under the per-request timeout.
func (c *Client) once(ctx context.Context, method, path string, payload []byte, limit int64) (int, []byte, error) {
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	u := *c.base
	u.Path += path
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(rctx, method, u.String(), body)
	if err != nil {
		return 0, nil, err
	}
	for k, vs := range c.cfg.Headers {
		req.Header[http.CanonicalHeaderKey(k)] = vs
	}
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.requests.Add(1)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, c.transportError(ctx, rctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return 0, nil, c.transportError(ctx, rctx, err)
	}
	if int64(len(data)) > limit {
		return 0, nil, fmt.Errorf("%s %s: the response is %w (more than %d bytes)", method, path, oip.ErrTooLarge, limit)
	}
	return resp.StatusCode, data, nil
}

// transportError words a failed exchange for a person: which server, and whether it
// was unreachable or too slow. The URL is the base, never a header.
func (c *Client) transportError(parent, rctx context.Context, err error) error {
	host := c.base.Scheme + "://" + c.base.Host
	switch {
	case parent.Err() != nil:
		return fmt.Errorf("verification cancelled: %w", parent.Err())
	case errors.Is(rctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("endpoint %s did not answer within %s", host, c.cfg.Timeout)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var nerr *net.OpError
	if errors.As(err, &nerr) && nerr.Op == "dial" {
		return fmt.Errorf("endpoint %s is unreachable: %w", host, nerr.Err)
	}
	return fmt.Errorf("endpoint %s: %w", host, err)
}

// errorText renders an error body for a message: the specification's {"error": "..."}
// when present, otherwise the start of the body, printable characters only.
func errorText(body []byte) string {
	var e oip.ErrorBody
	text := string(body)
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		text = e.Error
	}
	text = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, strings.TrimSpace(text))
	if len(text) > 200 {
		text = text[:200] + "..."
	}
	if text == "" {
		return ""
	}
	return ": " + text
}

// redact drops userinfo from a URL for an error message.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		u.User = url.User("REDACTED")
		return u.String()
	}
	return raw
}
