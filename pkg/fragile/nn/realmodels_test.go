package nn_test

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// realCIFARDir holds the CIFAR-10 classifiers trained by other people
// (../shared/realmodels/README.md); tests skip, saying so, when it is absent.
const realCIFARDir = "../../../../shared/realmodels/cifar10"

// TestRealCIFARModelsCompile compiles every real CIFAR-10 model (marabou's NHWC
// input with its Transpose included) and runs a batch of 3, checking float32
// against float64 inference of the same graph.
func TestRealCIFARModelsCompile(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join(realCIFARDir, "*.onnx"))
	if len(paths) == 0 {
		t.Skipf("no real CIFAR-10 models in %s (../shared is absent outside the team's machines)", realCIFARDir)
	}
	r := rand.New(rand.NewPCG(71, 72))
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			m, err := onnx.Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			net, err := nn.Compile(m)
			if err != nil {
				t.Fatal(err)
			}
			if net.Classes != 10 {
				t.Errorf("%d classes, want 10", net.Classes)
			}
			const batch = 3
			inputs := make([]float32, batch*net.InputSize())
			for i := range inputs {
				inputs[i] = float32(r.Float64())
			}
			f32 := runLogits(t, net, batch, tensor.Float32, inputs)
			f64 := runLogits(t, net, batch, tensor.Float64, inputs)
			for row := range batch {
				scale := 0.0
				for _, v := range f64[row*net.Classes:][:net.Classes] {
					scale = math.Max(scale, math.Abs(v))
				}
				for c := range net.Classes {
					i := row*net.Classes + c
					if math.IsNaN(f32[i]) || math.Abs(f32[i]-f64[i]) > precisionTol*scale {
						t.Errorf("example %d class %d: float32 %g, float64 %g", row, c, f32[i], f64[i])
					}
				}
			}
			t.Logf("input %s %v, %d classes", net.InputName, net.InputShape, net.Classes)
		})
	}
}
