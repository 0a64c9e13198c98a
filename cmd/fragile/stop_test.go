package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fragile-operator/fragile-operator/internal/zoo"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
)

// TestMain lets a test run this binary as the fragile command: with
// FRAGILE_TEST_MAIN set, the test binary is fragile, signals and exit status included.
func TestMain(m *testing.M) {
	if os.Getenv("FRAGILE_TEST_MAIN") != "" {
		os.Args = append([]string{"fragile"}, os.Args[1:]...)
		main()
		return
	}
	os.Exit(m.Run())
}

// TestWatermarkStopsOnSIGTERM is the acceptance of issue 11's cancellation: SIGTERM
// in the middle of training ends `fragile watermark` within seconds, with exit
// status 3, a message that says it was stopped, and a report that says so. The
// watermark cannot finish on its own: the paper's loss with a huge variance weight
// never labels every trigger, and the step budget is a million.
func TestWatermarkStopsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("runs fragile watermark on mnist-7 in a child process")
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
	cmd := exec.Command(os.Args[0], "watermark", "--model", path("mnist-7.onnx"), "--key", path("key"),
		"--out", path("bundle"), "--report", path("report.json"), "--input-range", "0,255",
		"--method", "paper", "--lambda", "1e9", "--max-steps", "1000000")
	cmd.Env = append(os.Environ(), "FRAGILE_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until training runs, then ask it to stop.
	lines := bufio.NewScanner(stderr)
	var log strings.Builder
	for lines.Scan() {
		log.WriteString(lines.Text() + "\n")
		if strings.HasPrefix(lines.Text(), "training step") {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()
	done := make(chan error, 1)
	go func() {
		for lines.Scan() {
			log.WriteString(lines.Text() + "\n")
		}
		done <- cmd.Wait()
	}()
	// The bound is generous on purpose (the 15 s): this is not a timing test.
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("still running 15 s after SIGTERM:\n%s", log.String())
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitStopped {
		t.Fatalf("exit %v, want status %d\n%s", err, exitStopped, log.String())
	}
	t.Logf("stopped %.1fs after SIGTERM", time.Since(signalled).Seconds())
	if !strings.Contains(log.String(), "stopped by a signal") {
		t.Errorf("stderr does not say it was stopped:\n%s", log.String())
	}
	var rep fragile.WatermarkReport
	readJSON(t, path("report.json"), &rep)
	if rep.Result != fragile.WatermarkFailed || !strings.HasPrefix(rep.Message, "stopped") {
		t.Errorf("report %+v: want result %q and a message starting with \"stopped\"", rep, fragile.WatermarkFailed)
	}
	if _, err := os.Stat(path("bundle")); !os.IsNotExist(err) {
		t.Errorf("a stopped watermark wrote a bundle (%v)", err)
	}
}
