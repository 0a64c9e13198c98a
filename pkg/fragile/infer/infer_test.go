package infer

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	gtensor "gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/internal/zoo"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// realModels are mnist-7 and every CIFAR-10 classifier in ../shared/realmodels.
func realModels(t *testing.T) map[string][]byte {
	t.Helper()
	models := map[string][]byte{}
	m, err := zoo.MNIST7()
	if err != nil {
		t.Fatal(err)
	}
	models["mnist-7"] = m
	files, _ := filepath.Glob("../../../../shared/realmodels/cifar10/*.onnx")
	if len(files) == 0 {
		t.Log("../shared/realmodels absent: only mnist-7 is compared")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		models[strings.TrimSuffix(filepath.Base(f), ".onnx")] = data
	}
	return models
}

func uniform(rng *rand.Rand, n int, scale float32) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = scale * rng.Float32()
	}
	return x
}

// compileBytes decodes and compiles an ONNX file, failing the test on error.
func compileBytes(t testing.TB, data []byte) (*onnx.Model, *Program) {
	t.Helper()
	m, err := onnx.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	return m, prog
}

// maxRelDiff is the largest |a-b| over the largest |b| of each row.
func maxRelDiff(a, b []float64, classes int) float64 {
	worst := 0.0
	for r := 0; r < len(a)/classes; r++ {
		scale := 1e-30
		for _, v := range b[r*classes : (r+1)*classes] {
			scale = math.Max(scale, math.Abs(v))
		}
		for c := r * classes; c < (r+1)*classes; c++ {
			worst = math.Max(worst, math.Abs(a[c]-b[c])/scale)
		}
	}
	return worst
}

// TestMatchesGradientBuilder runs every real model through this engine and the
// gorgonia graph the product trains with, in float32 and float64, and requires the
// same labels and logits within float rounding.
func TestMatchesGradientBuilder(t *testing.T) {
	const batch = 8
	for name, data := range realModels(t) {
		t.Run(name, func(t *testing.T) {
			m, prog := compileBytes(t, data)
			net, err := nn.Compile(m)
			if err != nil {
				t.Skipf("the gradient builder refuses it: %v", err)
			}
			if !slices.Equal(prog.InputShape, net.InputShape) || prog.Classes != net.Classes {
				t.Fatalf("input %v, %d classes; the gradient builder reads %v, %d", prog.InputShape, prog.Classes, net.InputShape, net.Classes)
			}
			scale := float32(1)
			if name == "mnist-7" {
				scale = 255
			}
			x := uniform(rand.New(rand.NewPCG(1, 2)), batch*prog.InputSize(), scale)
			for _, tc := range []struct {
				dtype gtensor.Dtype
				tol   float64
			}{{gtensor.Float32, 1e-4}, {gtensor.Float64, 1e-10}} {
				ref, err := nn.NewRunner(net, batch, tc.dtype)
				if err != nil {
					t.Fatal(err)
				}
				want, err := ref.Logits(x)
				ref.Close()
				if err != nil {
					t.Fatal(err)
				}
				var got []float64
				if tc.dtype == gtensor.Float32 {
					r, err := NewRunner[float32](prog, batch, 2)
					if err != nil {
						t.Fatal(err)
					}
					if got, err = r.Logits(x); err != nil {
						t.Fatal(err)
					}
				} else {
					r, err := NewRunner[float64](prog, batch, 2)
					if err != nil {
						t.Fatal(err)
					}
					if got, err = r.Logits(x); err != nil {
						t.Fatal(err)
					}
				}
				if d := maxRelDiff(got, want, prog.Classes); d > tc.tol {
					t.Errorf("%v: logits differ from the gradient builder's by %.3g of the row's scale (tolerance %g)", tc.dtype, d, tc.tol)
				}
				gotLabels, _ := nn.TopTwo(got, prog.Classes)
				wantLabels, _ := nn.TopTwo(want, prog.Classes)
				if !slices.Equal(gotLabels, wantLabels) {
					t.Errorf("%v: labels %v, the gradient builder's %v", tc.dtype, gotLabels, wantLabels)
				}
			}
		})
	}
}

// TestPositionIndependent checks what the package documents: an example's logits
// are bitwise the same wherever it sits in the batch, whatever the batch size and
// the thread count.
func TestPositionIndependent(t *testing.T) {
	for name, data := range realModels(t) {
		t.Run(name, func(t *testing.T) {
			_, prog := compileBytes(t, data)
			checkPositionIndependent(t, prog)
		})
	}
}

// checkPositionIndependent runs five examples alone and in batches of five on 1 to
// 3 threads and requires bitwise equal logits.
func checkPositionIndependent(t *testing.T, prog *Program) {
	t.Helper()
	size, classes := prog.InputSize(), prog.Classes
	rng := rand.New(rand.NewPCG(3, 4))
	x := uniform(rng, 5*size, 1)
	alone, err := NewRunner[float32](prog, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, threads := range []int{1, 2, 3} {
		r, err := NewRunner[float32](prog, 5, threads)
		if err != nil {
			t.Fatal(err)
		}
		batchLogits, err := r.Logits(x)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			one, err := alone.Logits(x[i*size : (i+1)*size])
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(one, batchLogits[i*classes:(i+1)*classes]) {
				t.Fatalf("%d threads: example %d's logits in the batch %v differ from alone %v", threads, i, batchLogits[i*classes:(i+1)*classes], one)
			}
		}
	}
}

func TestRefusesUnsupportedOp(t *testing.T) {
	data, err := zoo.MNIST7()
	if err != nil {
		t.Fatal(err)
	}
	m, err := onnx.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	m.Graph.Nodes[3].OpType = "Hardmax"
	_, err = Compile(m)
	if !errors.Is(err, ErrUnsupported) || !errors.Is(err, nn.ErrUnsupported) {
		t.Fatalf("error %v does not wrap ErrUnsupported", err)
	}
	if !strings.Contains(err.Error(), "Hardmax") || !strings.Contains(err.Error(), m.Graph.Nodes[3].Label()) {
		t.Errorf("error %q names neither the op nor the node", err)
	}
}

// TestRefusesInconsistentWeights: an initializer whose values do not fill its dims
// is an error naming it, never a panic.
func TestRefusesInconsistentWeights(t *testing.T) {
	data, err := zoo.MNIST7()
	if err != nil {
		t.Fatal(err)
	}
	m, err := onnx.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	var name string
	for i := range m.Graph.Initializers {
		if w := &m.Graph.Initializers[i]; w.DataType == onnx.DataTypeFloat && len(w.Float) > 1 {
			w.Float, name = w.Float[:len(w.Float)-1], w.Name
			break
		}
	}
	if _, err := Compile(m); err == nil || !strings.Contains(err.Error(), name) {
		t.Fatalf("error %v does not name initializer %q", err, name)
	}
}
