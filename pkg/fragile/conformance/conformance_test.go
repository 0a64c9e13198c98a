package conformance

import (
	"bytes"
	"flag"
	"os"
	"testing"
)

var report = flag.String("report", "", "write the conformance report (docs/conformance.md) to this file (relative paths are to this package's directory)")

// minPassRate is issue 9's goal: at least 95% of the cases for claimed ops pass.
const minPassRate = 0.95

// TestBackendSuite runs every node and pytorch-converted case of the ONNX backend
// test suite whose ops nn claims. A failure (wrong values, an error that is not a
// refusal, a panic) fails the test; refusals are counted and reported.
func TestBackendSuite(t *testing.T) {
	root := os.Getenv("FRAGILE_ONNX_TESTDATA")
	if root == "" {
		root = TestdataDir
	}
	if _, err := os.Stat(root); err != nil {
		t.Skipf("the ONNX backend test suite is not installed at %s (Debian libonnx-testdata; hack/conformance.sh installs it): %v", root, err)
	}
	run, err := RunSuites(root, Suites...)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range run.Results {
		if r.Outcome == Failed {
			t.Errorf("%s/%s (%s): %s", r.Case.Suite, r.Case.Name, joinOps(r.Case.Ops), r.Message)
		}
	}
	s := Summarize(run.Results)
	t.Logf("%d claimed cases: %d passed, %d refused, %d failed (%.1f%% pass); not run: %d on other element types, %d on other ops",
		s.Cases, s.Passed, s.Refused, s.Failed, 100*s.PassRate(), len(run.OtherTypes), len(run.OtherOps))
	// Below issue 9's goal the suite still passes: refusals are named in the report,
	// and hack/conformance.sh fails when the report differs from the committed
	// docs/conformance.md, so a case that stops passing is caught there.
	if s.PassRate() < minPassRate {
		t.Logf("%.1f%% of the claimed cases pass: short of the %.0f%% goal (see docs/conformance.md for what is refused)", 100*s.PassRate(), 100*minPassRate)
	}
	if *report != "" {
		var b bytes.Buffer
		if err := run.WriteReport(&b); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*report, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
