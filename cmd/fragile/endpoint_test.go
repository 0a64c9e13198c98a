package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fragile-operator/fragile-operator/internal/oiptest"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
)

// TestServeAndVerifyEndpoint is issue 13's loopback acceptance through the command line:
// `fragile serve` serves the watermarked model, `fragile verify --endpoint` finds it
// intact (exit 0); the file is replaced by a fine-tuned copy while the server runs, and
// verification finds it tampered (exit 1); a file that does not load, and a server that
// is gone, are "could not verify" (exit 2) with the reason.
func TestServeAndVerifyEndpoint(t *testing.T) {
	w, err := oiptest.Fixture()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }
	keyText, _ := w.Key.MarshalText()
	for name, data := range map[string][]byte{"convnet.onnx": w.Model, "key": keyText, "bundle": w.Sealed} {
		if err := os.WriteFile(path(name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan int, 1)
	go func() {
		served <- serveModel(ctx, []string{"--model", path("convnet.onnx"), "--port", strconv.Itoa(port), "--reload-interval", "20ms"})
	}()
	defer func() {
		cancel()
		<-served
	}()
	waitReady(t, url)

	verify := func() fragile.VerifyReport {
		t.Helper()
		code := run(t, "verify", "--endpoint", url, "--model-name", "convnet", "--bundle", path("bundle"), "--key", path("key"),
			"--timeout", "2s", "--report", path("report.json"))
		var r fragile.VerifyReport
		readJSON(t, path("report.json"), &r)
		if code != r.Result.ExitCode() {
			t.Errorf("exit %d for result %s", code, r.Result)
		}
		return r
	}
	if r := verify(); r.Result != fragile.ResultIntact || r.Total != 40 || r.Endpoint != url+"/v2/models/convnet" {
		t.Fatalf("the watermarked model: %+v", r)
	}

	replace(t, path("convnet.onnx"), w.FineTuned)
	if r := eventuallyVerdict(t, verify, fragile.ResultTampered); r.Mismatched == 0 {
		t.Errorf("tampered with no changed label: %+v", r)
	}

	replace(t, path("convnet.onnx"), w.Model[:len(w.Model)/2])
	if r := eventuallyVerdict(t, verify, fragile.ResultError); !strings.Contains(r.Message, "not ready") {
		t.Errorf("a broken file: %q", r.Message)
	}

	cancel()
	if code := <-served; code != 0 {
		t.Errorf("serve exited %d on cancellation", code)
	}
	served <- 0 // for the deferred receive
	if r := verify(); r.Result != fragile.ResultError || !strings.Contains(r.Message, "unreachable") {
		t.Errorf("the server gone: %+v", r)
	}

	if code := run(t, "verify", "--endpoint", url, "--model", path("convnet.onnx"), "--model-name", "convnet",
		"--bundle", path("bundle"), "--key", path("key")); code != 2 {
		t.Errorf("--model with --endpoint: exit %d", code)
	}
}

// eventuallyVerdict verifies until the result is want (the server's watcher reloads the
// file within tens of milliseconds) or five seconds pass.
func eventuallyVerdict(t *testing.T, verify func() fragile.VerifyReport, want fragile.Result) fragile.VerifyReport {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := verify()
		if r.Result == want || time.Now().After(deadline) {
			if r.Result != want {
				t.Fatalf("still %s after 5s, want %s: %s", r.Result, want, r.Message)
			}
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// replace swaps a file by rename, as a deployment would.
func replace(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path+".new", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url + "/v2/health/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not become ready", url)
}

// TestReadAuthDir reads credentials laid out as the kubelet mounts a Secret: each data key a
// symlink into a hidden ..data directory, which is skipped.
func TestReadAuthDir(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "..2026_12_02_01_00_00.000000000")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, value := range map[string]string{"token": "t0ken\n", "X-Api-Key": "k3y"} {
		if err := os.WriteFile(filepath.Join(data, name), []byte(value), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Base(data), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"token", "X-Api-Key"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	h := http.Header{}
	if err := readAuthDir(dir, h); err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h.Get("Authorization") != "Bearer t0ken" || h.Get("X-Api-Key") != "k3y" {
		t.Errorf("headers %v", h)
	}
	if err := os.WriteFile(filepath.Join(dir, "X-Bad"), []byte("a\nb"), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := readAuthDir(dir, http.Header{}); err == nil || strings.Contains(err.Error(), "a\nb") {
		t.Errorf("a two-line header value: %v", err)
	}
}
