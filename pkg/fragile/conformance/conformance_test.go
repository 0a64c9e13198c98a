package conformance

import (
	"bytes"
	"flag"
	"os"
	"testing"
)

var report = flag.String("report", "", "write the conformance report (docs/conformance.md) to this file (relative paths are to this package's directory)")

// TestBackendSuite runs every node and pytorch-converted case of the ONNX backend
// test suite whose ops nn claims. A failure (wrong values, an error that is not a
// refusal, a panic) fails the test, on nn or on infer (the verification path),
// and so does a pass rate on nn under MinPassPercent; refusals are counted and
// reported.
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
	verified := 0
	for _, r := range run.Results {
		if r.Outcome == Failed {
			t.Errorf("%s/%s (%s): %s", r.Case.Suite, r.Case.Name, joinOps(r.Case.Ops), r.Message)
		}
		// A wrong value on infer is a wrong verification verdict waiting to happen.
		if r.Infer == Failed {
			t.Errorf("%s/%s (%s) on infer, the verification path: %s", r.Case.Suite, r.Case.Name, joinOps(r.Case.Ops), r.InferMessage)
		}
		if r.VerificationPassed() {
			verified++
		}
	}
	s := Summarize(run.Results)
	t.Logf("%d claimed cases: %d passed, %d refused, %d failed (%.1f%% pass); not run: %d on other element types, %d on other ops",
		s.Cases, s.Passed, s.Refused, s.Failed, 100*s.PassRate(), len(run.OtherTypes), len(run.OtherOps))
	t.Logf("verification path (infer, nn where infer refuses): %d of %d claimed cases pass", verified, s.Cases)
	// Below issue 9's goal the suite fails, refusals or not (the report is still
	// written, listing them); hack/conformance.sh also fails when the report differs
	// from the committed docs/conformance.md, so a case that stops passing is caught
	// even above the goal.
	if err := s.CheckPassRate(); err != nil {
		t.Errorf("%v (the refused cases are listed in the report)", err)
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
