package main

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fragile-operator/fragile-operator/internal/zoo"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/attack"
)

// run calls a subcommand in-process, as main would, and returns its exit status.
func run(t *testing.T, args ...string) int {
	t.Helper()
	cmd, ok := subcommands[args[0]]
	if !ok {
		t.Fatalf("no subcommand %q", args[0])
	}
	return cmd(context.Background(), args[1:])
}

func readJSON(t *testing.T, path string, v any) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var fields map[string]any
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	return fields
}

// TestCLIEndToEnd is issue 2's acceptance through the command line on mnist-7:
// keygen, watermark, then verify with exit status 0 (intact), 1 (tampered) and 2
// (could not verify: truncated model, corrupted bundle, wrong key) and a JSON report
// with the promised fields.
func TestCLIEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("watermarks mnist-7 (seconds)")
	}
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }
	model, err := zoo.MNIST7()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path("mnist-7.onnx"), model, 0o644); err != nil {
		t.Fatal(err)
	}

	if code := run(t, "keygen", "--out", path("key")); code != 0 {
		t.Fatalf("keygen: exit %d", code)
	}
	if info, err := os.Stat(path("key")); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, mode %v; want 0600", err, info.Mode())
	}
	keyText, _ := os.ReadFile(path("key"))
	if code := run(t, "keygen", "--out", path("key")); code != 2 {
		t.Errorf("keygen over an existing key: exit %d, want 2", code)
	}
	if after, _ := os.ReadFile(path("key")); string(after) != string(keyText) {
		t.Fatal("keygen overwrote a key")
	}
	var key fragile.Key
	if err := key.UnmarshalText(keyText); err != nil {
		t.Fatal(err)
	}

	code := run(t, "watermark", "--model", path("mnist-7.onnx"), "--key", path("key"), "--out", path("bundle"),
		"--input-range", "0,255", "--triggers", "100", "--report", path("watermark.json"))
	if code != 0 {
		t.Fatalf("watermark: exit %d", code)
	}
	var wm fragile.WatermarkReport
	readJSON(t, path("watermark.json"), &wm)
	if wm.Result != fragile.WatermarkSucceeded || wm.KeyMatch != 1 || wm.Triggers != 100 || wm.KeyID != key.ID() {
		t.Errorf("watermark report %+v", wm)
	}
	secret := strings.TrimPrefix(strings.TrimSpace(string(keyText)), "fragile-key-v1:")
	if strings.Contains(string(mustRead(t, path("watermark.json"))), secret) {
		t.Error("the watermark report contains the key")
	}

	verify := func(t *testing.T, modelPath, bundlePath, keyPath string) (int, fragile.VerifyReport, map[string]any) {
		t.Helper()
		report := filepath.Join(t.TempDir(), "verify.json")
		code := run(t, "verify", "--model", modelPath, "--bundle", bundlePath, "--key", keyPath, "--json", "--report", report)
		var r fragile.VerifyReport
		fields := readJSON(t, report, &r)
		if r.Result.ExitCode() != code {
			t.Errorf("exit %d for result %s", code, r.Result)
		}
		return code, r, fields
	}

	t.Run("intact", func(t *testing.T) {
		code, r, fields := verify(t, path("mnist-7.onnx"), path("bundle"), path("key"))
		if code != 0 || r.Result != fragile.ResultIntact || r.Total != 100 || r.Mismatched != 0 || !r.DigestMatches {
			t.Errorf("exit %d, report %+v", code, r)
		}
		for _, f := range []string{"result", "total", "mismatched", "digestMatches", "durationSeconds"} {
			if _, ok := fields[f]; !ok {
				t.Errorf("JSON report lacks %q: %v", f, fields)
			}
		}
	})

	t.Run("weight noise", func(t *testing.T) {
		noisy, err := attack.Noise(model, attack.NoiseOptions{Sigma: 0.01, Relative: true}, rand.New(rand.NewPCG(7, 0)))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path("noisy.onnx"), noisy, 0o644); err != nil {
			t.Fatal(err)
		}
		code, r, _ := verify(t, path("noisy.onnx"), path("bundle"), path("key"))
		if code != 1 || r.Result != fragile.ResultTampered || r.Mismatched == 0 || r.DigestMatches {
			t.Errorf("exit %d, report %+v", code, r)
		}
	})

	t.Run("truncated model", func(t *testing.T) {
		if err := os.WriteFile(path("truncated.onnx"), model[:len(model)*2/3], 0o644); err != nil {
			t.Fatal(err)
		}
		code, r, _ := verify(t, path("truncated.onnx"), path("bundle"), path("key"))
		if code != 2 || !strings.Contains(r.Message, "not an ONNX model") {
			t.Errorf("exit %d, report %+v", code, r)
		}
	})

	t.Run("corrupted bundle", func(t *testing.T) {
		sealed := mustRead(t, path("bundle"))
		sealed[len(sealed)/2] ^= 0x10
		if err := os.WriteFile(path("corrupt"), sealed, 0o600); err != nil {
			t.Fatal(err)
		}
		code, r, _ := verify(t, path("mnist-7.onnx"), path("corrupt"), path("key"))
		if code != 2 || !strings.Contains(r.Message, "corrupted") {
			t.Errorf("exit %d, report %+v", code, r)
		}
	})

	t.Run("wrong key", func(t *testing.T) {
		if code := run(t, "keygen", "--out", path("other-key")); code != 0 {
			t.Fatal("keygen")
		}
		code, r, _ := verify(t, path("mnist-7.onnx"), path("bundle"), path("other-key"))
		if code != 2 || !strings.Contains(r.Message, "wrong key") {
			t.Errorf("exit %d, report %+v", code, r)
		}
	})

	t.Run("missing flags", func(t *testing.T) {
		code, r, _ := verify(t, path("mnist-7.onnx"), "", path("key"))
		if code != 2 || !strings.Contains(r.Message, "--bundle") {
			t.Errorf("exit %d, report %+v", code, r)
		}
	})
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
