package nn_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fragile-operator/fragile-operator/internal/onnxtest"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// Gradient faults of the builder that only whole models showed.
//
// Concat with parts past channel 255. gorgonia v0.9.18's own
// Concat takes each part's gradient as a slice of the output's, and its slice op
// hashes the slice bounds as single bytes: the gradients of the parts at [s:e] and
// [s+256:e+256] became one graph node, and densenet121's input gradient was wrong
// by orders of magnitude from its second dense block on. Both tests below failed
// that way (relative errors 0.3 to 2 on the input gradient).

// TestConcatGradientPastChannel255 is the op alone: nine equal 32-channel parts,
// the ninth starting at channel 256, where it met the first part's gradient.
func TestConcatGradientPastChannel255(t *testing.T) {
	r := rand.New(rand.NewPCG(71, 72))
	c := opCase{dims: []int64{2, 2, 2}, body: func(b *onnxtest.Builder) string {
		x := b.Last()
		var parts []string
		for i := range 9 {
			parts = append(parts, b.Node("Conv", []string{x, b.Weight(fmt.Sprintf("part%d.weight", i), 0, 0.5, 32, 2, 1, 1)}))
		}
		return b.Node("Concat", parts, onnxtest.AttrInt("axis", 1))
	}}
	checkOpCase(t, c, r)
}

// TestGradientsDenseNet checks a densenet-like classifier end to end: a stem,
// a dense block of nine layers (Concat of every earlier output, BatchNormalization,
// Relu, 1x1 Conv with bias as PyTorch's export folds the second norm into it, Relu,
// 3x3 Conv) growing 16 channels to 304, a transition (BatchNormalization, Relu, 1x1
// Conv, AveragePool), and the head (BatchNormalization, Relu, GlobalAveragePool,
// Gemm). The steps are 1e-7, not 1e-5: with some 36,000 Relu units per example, a step of 1e-5
// often moves a few across zero, bending the slope by less than the kink filter
// sees but more than the 1e-6 tolerance allows.
func TestGradientsDenseNet(t *testing.T) {
	r := rand.New(rand.NewPCG(73, 74))
	m := denseNet(r, 16, 32, 9)
	const batch = 2
	inputs := make([]float64, batch*3*4*4)
	for i := range inputs {
		inputs[i] = r.NormFloat64()
	}
	checkGradients(t, gradCase{model: m, inputs: inputs, batch: batch, scale: 1, hInput: 1e-7, hParam: 1e-7, slopes: true}, r)
}

// denseNet builds the densenet-like classifier of TestGradientsDenseNet on
// 3x4x4 inputs, with He-scaled random weights so activations keep their scale.
func denseNet(r *rand.Rand, width, growth int64, layers int) *onnx.Model {
	b := onnxtest.NewBuilder(r, "x", -1, 3, 4, 4)
	n := 0
	name := func(what string) string {
		n++
		return fmt.Sprintf("%s%d", what, n)
	}
	norm := func(x string, c int64) string {
		return b.Node("BatchNormalization", []string{x,
			b.Uniform(name("bn.weight"), 0.5, 1.5, c), b.Weight(name("bn.bias"), 0, 0.3, c),
			b.Weight(name("bn.running_mean"), 0, 0.3, c), b.Uniform(name("bn.running_var"), 0.5, 2, c)})
	}
	conv := func(x string, in, out, k int64, bias bool) string {
		inputs := []string{x, b.Weight(name("conv.weight"), 0, math.Sqrt(2/float64(in*k*k)), out, in, k, k)}
		if bias {
			inputs = append(inputs, b.Weight(name("conv.bias"), 0, 0.1, out))
		}
		p := (k - 1) / 2
		return b.Node("Conv", inputs, onnxtest.AttrInts("kernel_shape", k, k), onnxtest.AttrInts("pads", p, p, p, p))
	}
	relu := func(x string) string { return b.Node("Relu", []string{x}) }

	c := width
	h := relu(norm(conv(b.Last(), 3, c, 3, false), c))
	features := []string{h}
	for range layers {
		in := features[0]
		if len(features) > 1 {
			in = b.Node("Concat", append([]string(nil), features...), onnxtest.AttrInt("axis", 1))
		}
		y := relu(conv(relu(norm(in, c)), c, 2*growth, 1, true))
		features = append(features, conv(y, 2*growth, growth, 3, false))
		c += growth
	}
	h = b.Node("Concat", features, onnxtest.AttrInt("axis", 1))
	h = conv(relu(norm(h, c)), c, c/2, 1, false)
	c /= 2
	h = b.Node("AveragePool", []string{h}, onnxtest.AttrInts("kernel_shape", 2, 2), onnxtest.AttrInts("strides", 2, 2))
	h = b.Node("GlobalAveragePool", []string{relu(norm(h, c))})
	h = b.Node("Flatten", []string{h})
	b.Node("Gemm", []string{h, b.Weight("fc.weight", 0, 0.3, c, 10), b.Weight("fc.bias", 0, 0.1, 10)})
	return b.Model(-1, 10)
}

// TestBatchNormGradientBatchOne checks BatchNormalization at batch 1 on 1x1 maps
// (densenet121's last dense block when one example is differentiated), where
// nothing broadcasts. Built from gorgonia's Reshape, Sub and an unbroadcast Add,
// Sub's gradient negated the output's gradient in place through the Reshape of
// the shift: the mean, variance and (in densenet121) input gradients were wrong.
func TestBatchNormGradientBatchOne(t *testing.T) {
	for name, dims := range map[string][]int64{"1x1": {4, 1, 1}, "2x2": {4, 2, 2}} {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(75, 76))
			c := opCase{dims: dims, body: func(b *onnxtest.Builder) string {
				return b.Node("BatchNormalization", []string{b.Last(),
					b.Uniform("bn.weight", 0.5, 1.5, 4), b.Weight("bn.bias", 0, 0.3, 4),
					b.Weight("bn.running_mean", 0, 0.3, 4), b.Uniform("bn.running_var", 0.5, 2, 4)})
			}}
			inputs := make([]float64, dims[0]*dims[1]*dims[2])
			for i := range inputs {
				inputs[i] = r.NormFloat64()
			}
			checkGradients(t, gradCase{model: c.model(t, r.Uint64()), inputs: inputs, batch: 1, scale: 1, hInput: 1e-5, hParam: 1e-5, slopes: true}, r)
		})
	}
}
