package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// MaxModelBytes bounds a model read from a file or URL.
const MaxModelBytes = 2 << 30

// ReadModel reads an ONNX model from a file path or an http(s) URL.
func ReadModel(ctx context.Context, ref string) ([]byte, error) {
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
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxModelBytes+1))
	if err != nil {
		return nil, fmt.Errorf("model URL %s: reading the body: %w", url, err)
	}
	if len(data) > MaxModelBytes {
		return nil, fmt.Errorf("model URL %s: larger than %d bytes", url, MaxModelBytes)
	}
	return data, nil
}
