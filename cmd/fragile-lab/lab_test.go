package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestMNIST7AndNoise extracts mnist-7 and writes a noisy copy through the subcommands,
// as the demos do: the copy differs from the original and has the same size (only
// weights change).
func TestMNIST7AndNoise(t *testing.T) {
	dir := t.TempDir()
	model, noisy := filepath.Join(dir, "mnist-7.onnx"), filepath.Join(dir, "noisy.onnx")
	ctx := context.Background()
	if code := subcommands["mnist7"](ctx, []string{"--out", model}); code != 0 {
		t.Fatalf("mnist7: exit %d", code)
	}
	if code := subcommands["attack"](ctx, []string{"noise", "--model", model, "--out", noisy, "--sigma", "0.01", "--relative"}); code != 0 {
		t.Fatalf("attack noise: exit %d", code)
	}
	a, _ := os.ReadFile(model)
	b, _ := os.ReadFile(noisy)
	if len(a) == 0 || len(a) != len(b) || bytes.Equal(a, b) {
		t.Errorf("mnist-7 %d bytes, noisy copy %d bytes, equal %v", len(a), len(b), bytes.Equal(a, b))
	}
	if code := subcommands["attack"](ctx, []string{"nope"}); code != exitUsage {
		t.Errorf("unknown attack: exit %d, want %d", code, exitUsage)
	}
}
