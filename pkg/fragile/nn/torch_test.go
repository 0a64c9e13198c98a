package nn_test

import (
	"math"
	"testing"

	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/internal/torchtest"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// The conformance tolerance of issue 9, rtol 1e-4 and atol 1e-5, with rtol taken
// relative to the largest logit of the example: |ours - PyTorch's| <= torchAbsTol +
// torchRelTol * max|row|. Relative to each logit alone it cannot hold for deep
// random-weight networks: a logit near zero carries the rounding noise of the whole
// row. Measured on regnet_x_400mf at 32 px, logit 0.0586: PyTorch float32 0.0586506,
// PyTorch float64 0.0585905, onnxruntime 0.0586533, ours (float64) 0.0586325.
const (
	torchRelTol = 1e-4
	torchAbsTol = 1e-5
)

// TestTorchFamiliesMatchPyTorch compiles every torchvision family exactly as
// torch.onnx.export wrote it (opsets 13 and 17, 32 px; resnet18 and mobilenet_v2 at
// 224 px unless -short) and compares our float32 logits with PyTorch's.
func TestTorchFamiliesMatchPyTorch(t *testing.T) {
	dir := torchtest.Dir(t)
	var names []string
	for _, family := range torchtest.Families {
		names = append(names, family+"_32_op13", family+"_32_op17")
	}
	names = append(names, "resnet18_32_op13_dynbatch")
	if !testing.Short() {
		names = append(names, "resnet18_224_op17", "mobilenet_v2_224_op17")
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			f := torchtest.Load(t, dir, name)
			m, err := onnx.Decode(f.Model)
			if err != nil {
				t.Fatal(err)
			}
			net, err := nn.Compile(m)
			if err != nil {
				t.Fatal(err)
			}
			n := len(f.Inputs) / net.InputSize()
			if len(f.Logits) != n*net.Classes {
				t.Fatalf("%d logits for %d examples of %d classes", len(f.Logits), n, net.Classes)
			}
			got := runLogits(t, net, n, tensor.Float32, f.Inputs)
			worst := 0.0
			for i, want := range f.Logits {
				scale := 0.0
				for _, v := range f.Logits[i/net.Classes*net.Classes:][:net.Classes] {
					scale = math.Max(scale, math.Abs(float64(v)))
				}
				allowed := torchAbsTol + torchRelTol*scale
				diff := math.Abs(got[i] - float64(want))
				if diff > allowed {
					t.Errorf("logit %d (example %d, class %d): ours %.7g, PyTorch's %.7g", i, i/net.Classes, i%net.Classes, got[i], want)
				}
				worst = math.Max(worst, diff/allowed)
			}
			t.Logf("%d examples x %d classes; worst difference %.2g of the tolerance", n, net.Classes, worst)
		})
	}
}
