package image

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDockerfileCopiesWhatTheBinaryNeeds keeps the Dockerfile's build stage copying exactly
// the package folders `go list -deps ./cmd/fragile` names: one missing breaks `docker build`,
// one extra ships lab code into the build context. "COPY dir/ dir/" copies every package
// under dir; "COPY dir/*.go dir/" only dir's own package.
func TestDockerfileCopiesWhatTheBinaryNeeds(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.Module.Path}} {{.Dir}}{{end}}", "./cmd/fragile")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	var needed []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		module, dir, _ := strings.Cut(line, " ")
		if module != "github.com/fragile-operator/fragile-operator" {
			continue
		}
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			t.Fatal(err)
		}
		needed = append(needed, filepath.ToSlash(rel))
	}
	sort.Strings(needed)

	dockerfile, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var copied []string
	for _, line := range strings.Split(string(dockerfile), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "COPY" || strings.HasPrefix(f[1], "--from") || f[1] == "go.mod" {
			continue
		}
		src := f[1]
		if dir, ok := strings.CutSuffix(src, "/*.go"); ok {
			copied = append(copied, dir)
			continue
		}
		dir := strings.TrimSuffix(src, "/")
		err := filepath.WalkDir(filepath.Join(repoRoot, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return err
			}
			if d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if pkg, _ := filepath.Glob(filepath.Join(path, "*.go")); len(nonTest(pkg)) > 0 {
				rel, _ := filepath.Rel(repoRoot, path)
				copied = append(copied, filepath.ToSlash(rel))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Dockerfile copies %s: %v", src, err)
		}
	}
	sort.Strings(copied)
	if diff := cmp.Diff(needed, copied); diff != "" {
		t.Errorf("the Dockerfile's COPY lines do not match the packages ./cmd/fragile links (-needed +copied):\n%s", diff)
	}
}

func nonTest(files []string) []string {
	var out []string
	for _, f := range files {
		if !strings.HasSuffix(f, "_test.go") {
			out = append(out, f)
		}
	}
	return out
}
