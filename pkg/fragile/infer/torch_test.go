package infer

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
)

// torchDir is where hack/torch/fixtures.sh exported the PyTorch fixtures:
// $FRAGILE_TORCH_DIR, else the newest export in the cache.
func torchDir(t *testing.T) string {
	if dir := os.Getenv("FRAGILE_TORCH_DIR"); dir != "" {
		return dir
	}
	home, _ := os.UserHomeDir()
	manifests, _ := filepath.Glob(filepath.Join(home, ".cache/fragile-operator/torch/*/manifest.json"))
	var newest string
	var newestTime int64
	for _, m := range manifests {
		if st, err := os.Stat(m); err == nil && st.ModTime().UnixNano() > newestTime {
			newest, newestTime = filepath.Dir(m), st.ModTime().UnixNano()
		}
	}
	if newest == "" {
		t.Skip("no PyTorch fixtures: run hack/torch/fixtures.sh, or set FRAGILE_TORCH_DIR")
	}
	return newest
}

func readFloats(t *testing.T, path string) []float32 {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

// TestMatchesPyTorch runs every PyTorch fixture (the nine torchvision families at
// 32 px, resnet18 and mobilenet_v2 at 224 px) and compares the logits with
// PyTorch's own at the conformance tolerance (rtol 1e-4, atol 1e-5 of the row scale).
func TestMatchesPyTorch(t *testing.T) {
	dir := torchDir(t)
	var manifest struct {
		Fixtures []struct {
			Name, Model, Inputs, Logits string
			Classes, N                  int
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatal(err)
	}
	for _, f := range manifest.Fixtures {
		t.Run(f.Name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, f.Model))
			if err != nil {
				t.Fatal(err)
			}
			_, prog := compileBytes(t, data)
			x, want := readFloats(t, filepath.Join(dir, f.Inputs)), readFloats(t, filepath.Join(dir, f.Logits))
			r, err := NewRunner[float32](prog, f.N, 1)
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Logits(x)
			if err != nil {
				t.Fatal(err)
			}
			want64 := make([]float64, len(want))
			for i, v := range want {
				want64[i] = float64(v)
			}
			for i := range got {
				if d := math.Abs(got[i] - want64[i]); d > 1e-5+1e-4*math.Abs(want64[i]) && d > 1e-4*maxAbsRow(want64, f.Classes, i) {
					t.Fatalf("logit %d: %g, PyTorch %g", i, got[i], want64[i])
				}
			}
			gl, _ := nn.TopTwo(got, f.Classes)
			wl, _ := nn.TopTwo(want64, f.Classes)
			if !slices.Equal(gl, wl) {
				t.Errorf("labels %v, PyTorch's %v", gl, wl)
			}
		})
	}
}

func maxAbsRow(v []float64, classes, i int) float64 {
	r := i / classes
	m := 0.0
	for _, x := range v[r*classes : (r+1)*classes] {
		m = math.Max(m, math.Abs(x))
	}
	return m
}
