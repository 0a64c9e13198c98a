package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// Architectures maps a name to a builder of an untrained 28x28 grey-image classifier
// with ten classes, weights drawn from r (He initialisation, zero biases). The
// layouts are those PyTorch exports: Gemm with transB, Flatten, symbolic batch.
var Architectures = map[string]func(r *rand.Rand) *onnx.Model{
	"mlp":    MLP,
	"lenet5": LeNet5,
	"mlp-bn": MLPBatchNorm,
}

// ArchitectureNames lists Architectures' keys, sorted.
func ArchitectureNames() []string {
	names := make([]string, 0, len(Architectures))
	for n := range Architectures {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

const (
	inputName = "image"
	classes   = 10
)

// dense adds a Gemm (transB) layer of out units on in inputs.
func dense(b *onnx.Builder, name string, x string, in, out int64) string {
	w := b.Weight(name+".weight", 0, math.Sqrt(2/float64(in)), out, in)
	bias := b.Const(name+".bias", make([]float32, out), out)
	return b.Node("Gemm", []string{x, w, bias}, onnx.AttrInt("transB", 1))
}

func conv(b *onnx.Builder, name string, x string, in, out, k, pad int64) string {
	w := b.Weight(name+".weight", 0, math.Sqrt(2/float64(in*k*k)), out, in, k, k)
	bias := b.Const(name+".bias", make([]float32, out), out)
	return b.Node("Conv", []string{x, w, bias}, onnx.AttrInts("kernel_shape", k, k), onnx.AttrInts("pads", pad, pad, pad, pad))
}

func pool(b *onnx.Builder, x string) string {
	return b.Node("MaxPool", []string{x}, onnx.AttrInts("kernel_shape", 2, 2), onnx.AttrInts("strides", 2, 2))
}

// MLP is Flatten, Gemm 784->128, Relu, Gemm 128->10.
func MLP(r *rand.Rand) *onnx.Model {
	b := onnx.NewBuilder(r, "fragile-operator/mlp", inputName, -1, 1, 28, 28)
	h := b.Node("Flatten", []string{b.Last()}, onnx.AttrInt("axis", 1))
	h = b.Node("Relu", []string{dense(b, "fc1", h, 784, 128)})
	dense(b, "fc2", h, 128, classes)
	return b.Model(-1, classes)
}

// LeNet5 is Conv 5x5x6 (pad 2), Relu, MaxPool, Conv 5x5x16, Relu, MaxPool, Flatten,
// Gemm 400->120, Relu, Gemm 120->84, Relu, Gemm 84->10.
func LeNet5(r *rand.Rand) *onnx.Model {
	b := onnx.NewBuilder(r, "fragile-operator/lenet5", inputName, -1, 1, 28, 28)
	h := pool(b, b.Node("Relu", []string{conv(b, "conv1", b.Last(), 1, 6, 5, 2)}))
	h = pool(b, b.Node("Relu", []string{conv(b, "conv2", h, 6, 16, 5, 0)}))
	h = b.Node("Flatten", []string{h}, onnx.AttrInt("axis", 1))
	h = b.Node("Relu", []string{dense(b, "fc1", h, 400, 120)})
	h = b.Node("Relu", []string{dense(b, "fc2", h, 120, 84)})
	dense(b, "fc3", h, 84, classes)
	return b.Model(-1, classes)
}

// MLPBatchNorm is Flatten, Gemm 784->256, BatchNormalization (on the 2-D Gemm output,
// as BatchNorm1d exports), Relu, Gemm 256->10. Training keeps the running statistics
// fixed (inference mode); they are drawn non-trivially so the exported file
// exercises the whole normalisation formula.
func MLPBatchNorm(r *rand.Rand) *onnx.Model {
	b := onnx.NewBuilder(r, "fragile-operator/mlp-bn", inputName, -1, 1, 28, 28)
	h := b.Node("Flatten", []string{b.Last()}, onnx.AttrInt("axis", 1))
	h = dense(b, "fc1", h, 784, 256)
	scale := b.Uniform("bn.weight", 0.8, 1.2, 256)
	shift := b.Weight("bn.bias", 0, 0.05, 256)
	mean := b.Weight("bn.running_mean", 0, 0.1, 256)
	variance := b.Uniform("bn.running_var", 0.5, 2, 256)
	h = b.Node("BatchNormalization", []string{h, scale, shift, mean, variance}, onnx.AttrFloat("epsilon", 1e-5))
	h = b.Node("Relu", []string{h})
	dense(b, "fc2", h, 256, classes)
	return b.Model(-1, classes)
}

// New builds the named architecture and encodes it.
func New(name string, r *rand.Rand) ([]byte, error) {
	build, ok := Architectures[name]
	if !ok {
		return nil, fmt.Errorf("unknown architecture %q (available: %v)", name, ArchitectureNames())
	}
	return onnx.Encode(build(r)), nil
}
