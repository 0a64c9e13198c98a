// Package e2e runs `make demo`'s script end to end on a local control plane and checks
// each step of the story and that nothing is left running afterwards.
package e2e

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo starts a control plane and takes about two minutes")
	}
	dir := t.TempDir()
	cmd := exec.Command("bash", "hack/demo.sh")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "DEMO_DIR="+dir)
	cmd.Stdin = nil
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("demo took %s", time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("hack/demo.sh failed: %v\n%s", err, out)
	}
	text := string(out)
	before, after, found := strings.Cut(text, "(before)")
	if !found {
		t.Fatalf("no 'describe (before)' section:\n%s", text)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`Watermarked=True Intact=Unknown|Watermarked=True Intact=True`),
		regexp.MustCompile(`Watermarked=True Intact=True Ready=True`),
	} {
		if !want.MatchString(before) {
			t.Errorf("before tampering, the output lacks %q", want)
		}
	}
	afterDescribe, metrics, _ := strings.Cut(after, "The alerting metric")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`Intact=False`),
		regexp.MustCompile(`Reason: +TamperDetected\s+Status: +False\s+Type: +Intact`),
		regexp.MustCompile(`Warning +TamperDetected .*found \d+ of 100 triggers with a changed label`),
		regexp.MustCompile(`Result: +Tampered`),
	} {
		if !want.MatchString(afterDescribe) {
			t.Errorf("after tampering, describe lacks %q", want)
		}
	}
	if !strings.Contains(text, "/metrics without a token: 401") {
		t.Errorf("the demo did not show /metrics refusing a request without a token")
	}
	if !regexp.MustCompile(`fragile_modelwatermark_intact_status\{[^}]*status="False"\} 1`).MatchString(metrics) {
		t.Errorf("the scraped metrics lack intact_status{status=\"False\"} 1:\n%s", metrics)
	}
	if strings.Contains(before, "TamperDetected") {
		t.Errorf("TamperDetected appeared before the model was tampered with")
	}

	// Nothing may be left behind: no process mentioning the demo directory, and every
	// port the demo used is free again.
	if procs := processesMentioning(t, dir); len(procs) > 0 {
		t.Errorf("processes left running after the demo:\n%s", strings.Join(procs, "\n"))
	}
	for _, port := range demoPorts(t, dir, text) {
		l, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			t.Errorf("port %s is still in use after the demo: %v", port, err)
			continue
		}
		l.Close()
	}
}

// processesMentioning lists running processes whose command line contains s.
func processesMentioning(t *testing.T, s string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || e.Name() == "self" {
			continue
		}
		if line := strings.ReplaceAll(string(cmdline), "\x00", " "); strings.Contains(line, s) {
			found = append(found, e.Name()+": "+line)
		}
	}
	return found
}

// demoPorts returns the ports of the local cluster (its ports.env) and of the
// operator's metrics endpoint (printed by the demo).
func demoPorts(t *testing.T, dir, output string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "cluster", "ports.env"))
	if err != nil {
		t.Fatalf("the cluster's ports.env: %v", err)
	}
	defer f.Close()
	var ports []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		if _, v, ok := strings.Cut(s.Text(), "="); ok && regexp.MustCompile(`^\d+$`).MatchString(v) {
			ports = append(ports, v)
		}
	}
	if len(ports) < 3 {
		t.Fatalf("ports.env lists %d ports, want the apiserver's, etcd's and the controller-manager's", len(ports))
	}
	if m := regexp.MustCompile(`metrics on https://127\.0\.0\.1:(\d+)/metrics`).FindStringSubmatch(output); m != nil {
		ports = append(ports, m[1])
	} else {
		t.Errorf("the demo did not print the metrics address")
	}
	return ports
}
