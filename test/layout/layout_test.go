package layout

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/fragile-operator/fragile-operator"

// deps lists the packages pkg links (go list -deps: imports, transitively, tests excluded).
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", pkg)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr)
	}
	return strings.Fields(string(out))
}

// forbid fails for every package pkg links whose path starts with one of the prefixes.
func forbid(t *testing.T, pkg string, prefixes ...string) {
	t.Helper()
	all := deps(t, pkg)
	if len(all) < 2 {
		t.Fatalf("go list -deps %s listed %d packages: the check would pass vacuously", pkg, len(all))
	}
	for _, d := range all {
		for _, p := range prefixes {
			if d == p || strings.HasPrefix(d, p+"/") {
				t.Errorf("%s links %s", pkg, d)
			}
		}
	}
}

// TestProductBinaryCarriesNoLab: attacks, the detection benchmark, classifier training,
// data sets and the zoo extraction (which runs `go mod download`) live in cmd/fragile-lab.
func TestProductBinaryCarriesNoLab(t *testing.T) {
	forbid(t, "./cmd/fragile",
		module+"/pkg/fragile/eval",
		module+"/pkg/fragile/attack",
		module+"/pkg/fragile/train",
		module+"/pkg/fragile/dataset",
		module+"/internal/zoo",
		module+"/cmd/fragile-lab",
		"gonum.org/v1/plot",
	)
}

// TestLabBinaryHasTheLab guards the rule above against a rename that would make it vacuous.
func TestLabBinaryHasTheLab(t *testing.T) {
	have := map[string]bool{}
	for _, d := range deps(t, "./cmd/fragile-lab") {
		have[d] = true
	}
	for _, want := range []string{"/pkg/fragile/eval", "/pkg/fragile/attack", "/pkg/fragile/train", "/pkg/fragile/dataset", "/internal/zoo"} {
		if !have[module+want] {
			t.Errorf("cmd/fragile-lab does not link %s%s", module, want)
		}
	}
}

// TestControllerLinksNoMLStack: the controller reads reports and writes keys through
// pkg/contract; it never touches a tensor, so it must not link one.
func TestControllerLinksNoMLStack(t *testing.T) {
	forbid(t, "./controllers",
		"gorgonia.org",
		"gonum.org",
		"github.com/owulveryck",
		module+"/pkg/fragile",
	)
}

// TestContractIsStandardLibraryOnly: both sides import the contract, so it must import
// nothing that either side would not want.
func TestContractIsStandardLibraryOnly(t *testing.T) {
	for _, d := range deps(t, "./pkg/contract") {
		if d == module+"/pkg/contract" {
			continue
		}
		if first, _, _ := strings.Cut(d, "/"); strings.Contains(first, ".") {
			t.Errorf("pkg/contract links %s, outside the standard library", d)
		}
	}
}
