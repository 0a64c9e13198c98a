package conformance

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/internal/torchtest"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/eval"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
)

const repoRoot = "../../.."

// torchFixture is one entry of the manifest hack/torch/export.py writes.
type torchFixture struct {
	Name      string `json:"name"`
	Exact     string `json:"exact"`
	InputName string `json:"inputName"`
	Shape     []int  `json:"shape"`
	Classes   int    `json:"classes"`
	N         int    `json:"n"`
}

// TestTorchFixtures compiles every PyTorch fixture the way the product loads a
// model (fragile.LoadNetwork, nn.Runner) and compares its logits with PyTorch's
// and with onnxruntime's, run by hack/ortrun in its own process, at rtol 1e-4 and
// atol 1e-5: in float64 against PyTorch in float64; in float32 against PyTorch and
// onnxruntime in float32 wherever those two are themselves that close to float64,
// and elsewhere no farther from float64 than the tolerance plus their own error.
func TestTorchFixtures(t *testing.T) {
	dir := torchtest.Dir(t)
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct {
		Torch    string         `json:"torch"`
		Fixtures []torchFixture `json:"fixtures"`
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatalf("%s: %v", filepath.Join(dir, "manifest.json"), err)
	}
	t.Logf("%d fixtures exported by torch %s in %s", len(manifest.Fixtures), manifest.Torch, dir)

	lib := os.Getenv("FRAGILE_ORT_LIB")
	var ortBin string
	if lib != "" {
		if ortBin, err = eval.BuildOrtRun(repoRoot, t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range manifest.Fixtures {
		t.Run(f.Name, func(t *testing.T) {
			fixture := torchtest.Load(t, dir, f.Name)
			model, inputs, torch := fixture.Model, fixture.Inputs, float64s(fixture.Logits)
			if len(inputs) != f.N*product(f.Shape) || len(torch) != f.N*f.Classes {
				t.Fatalf("%d input values and %d logits, the manifest says %d examples of %v and %d classes", len(inputs), len(torch), f.N, f.Shape, f.Classes)
			}
			if f.Exact == "" {
				t.Fatalf("the fixtures in %s have no float64 logits: export them again with hack/torch/fixtures.sh", dir)
			}
			exact := readFloat64s(t, filepath.Join(dir, f.Exact), f.N*f.Classes)

			net, err := fragile.LoadNetwork(model)
			if err != nil {
				t.Fatalf("compiling: %v", err)
			}
			if !slices.Equal(net.InputShape, f.Shape) || net.Classes != f.Classes {
				t.Fatalf("compiled as input %v, %d classes; exported as %v, %d classes", net.InputShape, net.Classes, f.Shape, f.Classes)
			}
			ours := logits(t, net, f.N, tensor.Float32, inputs)
			ours64 := logits(t, net, f.N, tensor.Float64, inputs)

			// What each op computes: ours and PyTorch's, both in float64. (The file
			// holds float32 weights, with BatchNorm folded into Conv by the exporter
			// in float32, so even this differs by that rounding: up to 1.5e-5 here.)
			if err := Compare(ours64, exact); err != nil {
				t.Errorf("ours against PyTorch's logits, both in float64: %v", err)
			}
			// What the product computes, in float32, against the same logits without
			// rounding. Deep networks accumulate float32 error beyond atol 1e-5 on
			// some logits, in PyTorch and onnxruntime too (regnet_x_400mf: PyTorch's
			// own float32 logits are 2.7e-5 from its float64 ones), so each value's
			// tolerance widens by the larger of their two errors on it: ours must be
			// as close as the tolerance or as close as they are.
			slack := make([]float64, len(exact))
			for i := range exact {
				slack[i] = math.Abs(torch[i] - exact[i])
			}
			var ort []float64
			if ortBin == "" {
				t.Log("FRAGILE_ORT_LIB is unset: not compared with onnxruntime (hack/test.sh sets it)")
			} else {
				b := &fragile.Bundle{InputName: f.InputName, InputShape: f.Shape, Classes: f.Classes, KeyLabels: make([]int, f.N), Triggers: inputs}
				res, err := eval.RunOrtRun(ortBin, lib, t.TempDir(), model, b, 1)
				if err != nil {
					t.Fatal(err)
				}
				ort = res.Logits
				for i := range exact {
					slack[i] = math.Max(slack[i], math.Abs(ort[i]-exact[i]))
				}
			}
			if err := CompareSlack(ours, exact, slack); err != nil {
				t.Errorf("ours in float32 against PyTorch's float64 logits, the tolerance widened by PyTorch's and onnxruntime's float32 errors: %v", err)
			}
			// Where PyTorch's and onnxruntime's float32 logits both lie within the
			// tolerance of the float64 ones, ours must match each of them plainly.
			plain := Compare(torch, exact) == nil && (ort == nil || Compare(ort, exact) == nil)
			if !plain {
				t.Log("PyTorch's or onnxruntime's float32 logits are off float64 by more than the tolerance: the float32 check is the widened one alone")
			} else {
				if err := Compare(ours, torch); err != nil {
					t.Errorf("ours against PyTorch's logits, both float32: %v", err)
				}
				if ort != nil {
					if err := Compare(ours, ort); err != nil {
						t.Errorf("ours against onnxruntime's logits, both float32: %v", err)
					}
				}
			}
			t.Logf("largest difference of ours (float32) to PyTorch's float32 logits %.2g (within the tolerance: %v), to onnxruntime's %.2g (%v); from float64: ours %.2g, PyTorch %.2g, onnxruntime %.2g; ours in float64 %.2g",
				maxDiff(ours, torch), Compare(ours, torch) == nil, maxDiff(ours, ort), ort != nil && Compare(ours, ort) == nil,
				maxDiff(ours, exact), maxDiff(torch, exact), maxDiff(ort, exact), maxDiff(ours64, exact))
		})
	}
}

// logits runs all n examples through net in one batch of dtype: the product runs
// triggers batched, and models exported at batch 1 are rebuilt for the batch.
func logits(t *testing.T, net *nn.Network, n int, dtype tensor.Dtype, inputs []float32) []float64 {
	t.Helper()
	r, err := nn.NewRunner(net, n, dtype)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out, err := r.Logits(inputs)
	if err != nil {
		t.Fatalf("%v: %v", dtype, err)
	}
	return out
}

// readFloat64s reads want raw little-endian float64 values.
func readFloat64s(t *testing.T, path string, want int) []float64 {
	t.Helper()
	v := make([]float64, want)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != binary.Size(v) {
		t.Fatalf("%s has %d bytes, %d float64 values were expected", path, len(raw), want)
	}
	if err := binary.Read(bytes.NewReader(raw), binary.LittleEndian, v); err != nil {
		t.Fatal(err)
	}
	return v
}

func product(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}

// maxDiff is the largest |a[i]-b[i]|; NaN when b is missing.
func maxDiff(a, b []float64) float64 {
	if len(b) != len(a) {
		return math.NaN()
	}
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(a[i]-b[i]))
	}
	return m
}
