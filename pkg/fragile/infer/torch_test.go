package infer

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fragile-operator/fragile-operator/internal/torchtest"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
)

// TestMatchesPyTorch runs every PyTorch fixture (the nine torchvision families at
// 32 px, resnet18 and mobilenet_v2 at 224 px) and compares the logits with
// PyTorch's own at the conformance tolerance (rtol 1e-4, atol 1e-5 of the row scale).
func TestMatchesPyTorch(t *testing.T) {
	dir := torchtest.Dir(t)
	var manifest struct {
		Fixtures []struct {
			Name       string
			Classes, N int
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
			fixture := torchtest.Load(t, dir, f.Name)
			_, prog := compileBytes(t, fixture.Model)
			x, want := fixture.Inputs, fixture.Logits
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

// TestPositionIndependentPyTorch extends TestPositionIndependent to the PyTorch
// fixtures whose kernels the CIFAR models do not reach: depthwise 3x3 and fused
// ReLU6 (mobilenet_v2), 3x3 taps dropped on 1x1 planes (resnet18 at 32 px).
func TestPositionIndependentPyTorch(t *testing.T) {
	dir := torchtest.Dir(t)
	for _, name := range []string{"resnet18_32_op17", "mobilenet_v2_32_op17"} {
		t.Run(name, func(t *testing.T) {
			_, prog := compileBytes(t, torchtest.Load(t, dir, name).Model)
			checkPositionIndependent(t, prog)
		})
	}
}
