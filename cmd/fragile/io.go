package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/fragile-operator/fragile-operator/pkg/fragile"
)

// maxModelBytes bounds a model read from a file or URL.
const maxModelBytes = 2 << 30

// readModel reads an ONNX model from a file path or an http(s) URL.
func readModel(ctx context.Context, ref string) ([]byte, error) {
	if strings.HasPrefix(ref, "http://") || strings.HasPrefix(ref, "https://") {
		return fetchURL(ctx, ref)
	}
	data, err := os.ReadFile(ref)
	if err != nil {
		return nil, fmt.Errorf("model file: %w", err)
	}
	return data, nil
}

func fetchURL(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("model URL %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("model URL %s is unreachable: %w", url, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("model URL %s answered %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxModelBytes+1))
	if err != nil {
		return nil, fmt.Errorf("model URL %s: reading the body: %w", url, err)
	}
	if len(data) > maxModelBytes {
		return nil, fmt.Errorf("model URL %s: larger than %d bytes", url, maxModelBytes)
	}
	return data, nil
}

// readKey reads a key file written by `fragile keygen` (or the operator's key Secret).
func readKey(path string) (fragile.Key, error) {
	var k fragile.Key
	text, err := os.ReadFile(path)
	if err != nil {
		return k, fmt.Errorf("key file: %w", err)
	}
	if err := k.UnmarshalText(text); err != nil {
		return k, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// writeReport writes v as one JSON object to path: a file for people, or a
// container's termination message path for the operator.
func writeReport(path string, v any) error {
	if path == "" {
		return nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// parseRange parses "MIN,MAX".
func parseRange(s string) (lo, hi float64, err error) {
	parts := strings.Split(s, ",")
	if len(parts) == 2 {
		if _, err = fmt.Sscan(parts[0], &lo); err == nil {
			_, err = fmt.Sscan(parts[1], &hi)
		}
		if err == nil && hi > lo {
			return lo, hi, nil
		}
	}
	return 0, 0, fmt.Errorf("--input-range %q: want MIN,MAX with MIN < MAX, e.g. 0,255", s)
}

// parseNormalization parses --input-mean and --input-std: comma-separated decimals,
// one per channel (or one for all), both or neither.
func parseNormalization(mean, std string) (fragile.Normalization, error) {
	var n fragile.Normalization
	if mean == "" && std == "" {
		return n, nil
	}
	if mean == "" || std == "" {
		return n, errors.New("--input-mean and --input-std go together: give both, one value per channel")
	}
	for _, f := range []struct {
		name, text string
		into       *[]float64
	}{{"--input-mean", mean, &n.Mean}, {"--input-std", std, &n.Std}} {
		for _, part := range strings.Split(f.text, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
			if err != nil {
				return n, fmt.Errorf("%s %q: want decimals separated by commas, e.g. 0.4914,0.4822,0.4465", f.name, f.text)
			}
			*f.into = append(*f.into, v)
		}
	}
	return n, nil
}

// fail prints an error for a person and returns the "could not complete" status,
// or exitStopped when the error is the command's own cancellation.
func fail(cmd string, err error) int {
	fmt.Fprintf(os.Stderr, "fragile %s: %v\n", cmd, err)
	if errors.Is(err, errStopped) {
		return exitStopped
	}
	return exitUsage
}

// errStopped marks work abandoned because the command was asked to stop.
var errStopped = errors.New("stopped by a signal before finishing")

// stopped returns errStopped, naming what was abandoned, when ctx was cancelled
// (the signal handler's context), and err otherwise.
func stopped(ctx context.Context, err error, what string) error {
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		return fmt.Errorf("%w; %s", errStopped, what)
	}
	return err
}
