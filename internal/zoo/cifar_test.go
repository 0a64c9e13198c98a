package zoo

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCIFARModelsMatchTheFolder checks the table against ../shared/realmodels: every
// entry has its file, every file has an entry, and the normalisations are the README's.
func TestCIFARModelsMatchTheFolder(t *testing.T) {
	dir, err := RealModelsDir("../..")
	if errors.Is(err, ErrNoRealModels) {
		t.Skipf("%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, m := range CIFARModels {
		listed[m.Path(dir)] = true
		if _, err := os.Stat(m.Path(dir)); err != nil {
			t.Errorf("%s: %v", m.Name, err)
		}
		if got, err := CIFARModelNamed(m.Name); err != nil || got != m {
			t.Errorf("CIFARModelNamed(%q) = %+v, %v", m.Name, got, err)
		}
		raw := strings.HasPrefix(m.Name, "marabou-")
		if m.Normalises() == raw || m.ChannelsLast != raw {
			t.Errorf("%s: normalises %v, channels last %v; the README says only marabou's take raw NHWC pixels", m.Name, m.Normalises(), m.ChannelsLast)
		}
	}
	for _, f := range files {
		if !listed[f] {
			t.Errorf("%s is not in CIFARModels", f)
		}
	}
	if len(files) != 11 {
		t.Errorf("%d models in %s, the README lists 11", len(files), dir)
	}
	if _, err := CIFARModelNamed("no-such-model"); err == nil {
		t.Error("an unknown name: no error")
	}
}

func TestRealModelsDirAbsent(t *testing.T) {
	t.Setenv(RealModelsDirEnv, t.TempDir())
	if _, err := RealModelsDir(""); !errors.Is(err, ErrNoRealModels) || !strings.Contains(err.Error(), CIFARImagesFile) {
		t.Errorf("empty folder: %v, want ErrNoRealModels naming %s", err, CIFARImagesFile)
	}
}
