package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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
	path, _ := mnistWithKey(t)
	// Wait until training runs, then ask it to stop.
	stopWatermark(t, path, []string{"--model", path("mnist-7.onnx"), "--input-range", "0,255",
		"--method", "paper", "--lambda", "1e9", "--max-steps", "1000000"},
		func(line string) bool { return strings.HasPrefix(line, "training step") })
}

// TestWatermarkStopsOnSIGTERMInsideAStep: on a 224 px, 1000-class model, building and
// differentiating the training graph and its first step take minutes of CPU that
// nothing can interrupt; SIGTERM must still end the command within seconds, with the
// same status and report (cli.Abandon). The signal goes two seconds after the start,
// while the graph is being built.
func TestWatermarkStopsOnSIGTERMInsideAStep(t *testing.T) {
	dir := os.Getenv("FRAGILE_TORCH_DIR")
	if testing.Short() || dir == "" {
		t.Skip("needs the PyTorch fixtures (FRAGILE_TORCH_DIR, hack/torch/fixtures.sh) and not -short")
	}
	path, _ := mnistWithKey(t) // for its key
	model := filepath.Join(dir, "resnet18_224_op17.onnx")
	if _, err := os.Stat(model); err != nil {
		t.Fatalf("fixture missing: %v", err)
	}
	start := time.Now()
	stopWatermark(t, path, []string{"--model", model, "--input-range", "0,1", "--triggers", "100"},
		func(string) bool { return time.Since(start) > 2*time.Second })
}

// stopWatermark runs `fragile watermark` with args (key, bundle and report under path)
// in a child process, sends SIGTERM at the first line of its stderr for which ready
// holds (or once ready holds, checked every line and every 100 ms), and checks that it
// ends within the 15 s with exit status 3, says so, writes a report that says
// so, and writes no bundle.
func stopWatermark(t *testing.T, path func(string) string, args []string, ready func(line string) bool) {
	t.Helper()
	args = append([]string{"watermark", "--key", path("key"), "--out", path("bundle"), "--report", path("report.json")}, args...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "FRAGILE_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var log strings.Builder
	readyLine := make(chan struct{}, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		lines := bufio.NewScanner(stderr)
		for lines.Scan() {
			mu.Lock()
			log.WriteString(lines.Text() + "\n")
			mu.Unlock()
			if ready(lines.Text()) {
				select {
				case readyLine <- struct{}{}:
				default:
				}
			}
		}
	}()
	logged := func() string { mu.Lock(); defer mu.Unlock(); return log.String() }
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-readyLine:
			break wait
		case <-tick.C:
			if ready("") {
				break wait
			}
		case <-scanned:
			t.Fatalf("fragile watermark ended before it was signalled:\n%s", logged())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()
	done := make(chan error, 1)
	go func() {
		<-scanned
		done <- cmd.Wait()
	}()
	// The bound is generous on purpose (the 15 s): this is not a timing test.
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("still running 15 s after SIGTERM:\n%s", logged())
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitStopped {
		t.Fatalf("exit %v, want status %d\n%s", err, exitStopped, logged())
	}
	t.Logf("stopped %.1fs after SIGTERM", time.Since(signalled).Seconds())
	if !strings.Contains(logged(), "stopped by a signal") {
		t.Errorf("stderr does not say it was stopped:\n%s", logged())
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
