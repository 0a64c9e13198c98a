package nn_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/internal/onnxtest"
	"github.com/fragile-operator/fragile-operator/internal/zoo"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// Tolerances, each relative to the largest absolute logit of the row compared.
const (
	// zooTol compares our float32 logits with the zoo's reference outputs and with
	// onnx-go's. A mnist-7 logit is the end of a chain of float32 sums of up to 200
	// products each; rounding (6e-8 per operation) done in a different order by
	// another runtime leaves a few 1e-7 (measured: 3e-7), so 1e-5 has a 30x margin
	// and still catches any real error (a wrong weight or pad moves logits by %).
	zooTol = 1e-5
	// precisionTol compares float32 with float64 inference of the same graph, for
	// the same reason and margin.
	precisionTol = 1e-5
	// referenceTol compares float64 inference with the float64 plain-Go reference:
	// the same arithmetic in a different order, so only float64 rounding differs
	// (measured: 1e-15).
	referenceTol = 1e-12
	// batchTol compares a row computed in a batch with the same example computed
	// alone, in float32.
	batchTol = 1e-6
)

var (
	mnistOnce  sync.Once
	mnistBytes []byte
	mnistModel *onnx.Model
	mnistNet   *nn.Network
	mnistErr   error
)

// mnist7 returns the zoo model, decoded and compiled once per test binary.
func mnist7(tb testing.TB) (*onnx.Model, *nn.Network) {
	tb.Helper()
	mnistOnce.Do(func() {
		if mnistBytes, mnistErr = zoo.MNIST7(); mnistErr != nil {
			return
		}
		if mnistModel, mnistErr = onnx.Decode(mnistBytes); mnistErr != nil {
			return
		}
		mnistNet, mnistErr = nn.Compile(mnistModel)
	})
	if mnistErr != nil {
		tb.Fatalf("mnist-7: %v", mnistErr)
	}
	return mnistModel, mnistNet
}

// zooSet returns the input image and reference logits of test_data_set_i.
func zooSet(tb testing.TB, i int) (image []float32, want []float64) {
	tb.Helper()
	in, out, err := zoo.MNIST7TestData(i)
	if err != nil {
		tb.Fatal(err)
	}
	x, err := onnx.DecodeTensor(in)
	if err != nil {
		tb.Fatal(err)
	}
	y, err := onnx.DecodeTensor(out)
	if err != nil {
		tb.Fatal(err)
	}
	for _, v := range y.Float {
		want = append(want, float64(v))
	}
	return x.Float, want
}

func runLogits(tb testing.TB, net *nn.Network, batch int, dtype tensor.Dtype, inputs []float32) []float64 {
	tb.Helper()
	r, err := nn.NewRunner(net, batch, dtype)
	if err != nil {
		tb.Fatalf("NewRunner(batch %d, %v): %v", batch, dtype, err)
	}
	defer r.Close()
	logits, err := r.Logits(inputs)
	if err != nil {
		tb.Fatalf("Logits: %v", err)
	}
	if len(logits) != batch*net.Classes {
		tb.Fatalf("%d logits for batch %d of %d classes", len(logits), batch, net.Classes)
	}
	return logits
}

// relDiff is the largest |a_i - b_i| over the largest |b_i|, row by row, of two
// (rows x classes) matrices.
func relDiff(a, b []float64, classes int) float64 {
	worst := 0.0
	for r := 0; r*classes < len(b); r++ {
		scale := 0.0
		for _, v := range b[r*classes : (r+1)*classes] {
			scale = math.Max(scale, math.Abs(v))
		}
		for j := r * classes; j < (r+1)*classes; j++ {
			worst = math.Max(worst, math.Abs(a[j]-b[j])/scale)
		}
	}
	return worst
}

func argmax(v []float64) int {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}

func TestMNIST7Network(t *testing.T) {
	m, net := mnist7(t)
	if net.InputName != "Input3" || net.OutputName != "Plus214_Output_0" {
		t.Errorf("input %s, output %s", net.InputName, net.OutputName)
	}
	if !slices.Equal(net.InputShape, []int{1, 28, 28}) || net.InputSize() != 784 || net.Classes != 10 {
		t.Errorf("input shape %v (size %d), %d classes", net.InputShape, net.InputSize(), net.Classes)
	}
	// Every FLOAT initializer is a weight, in file order; the INT64 Reshape targets
	// are not.
	var want []string
	for _, init := range m.Graph.Initializers {
		if init.DataType == onnx.DataTypeFloat {
			want = append(want, init.Name)
		}
	}
	if len(want) != 6 {
		t.Fatalf("mnist-7 has %d FLOAT initializers, want 6 (two convs and the classifier, each weight and bias)", len(want))
	}
	if got := net.ParamNames(); !slices.Equal(got, want) {
		t.Errorf("ParamNames = %v, want %v", got, want)
	}
}

func TestMNIST7MatchesZooOutputs(t *testing.T) {
	_, net := mnist7(t)
	for i := 0; i < 3; i++ {
		image, want := zooSet(t, i)
		got := runLogits(t, net, 1, tensor.Float32, image)
		t.Logf("set %d: relative difference from the zoo %.3g", i, relDiff(got, want, 10))
		if d := relDiff(got, want, 10); d > zooTol {
			t.Errorf("set %d: logits %v, zoo %v: relative difference %.3g > %g", i, got, want, d, zooTol)
		}
		if argmax(got) != argmax(want) {
			t.Errorf("set %d: label %d, zoo says %d", i, argmax(got), argmax(want))
		}
	}
}

// randomImages draws n images with pixels uniform in 0..255, the range mnist-7 reads.
func randomImages(r *rand.Rand, n, size int) []float32 {
	out := make([]float32, n*size)
	for i := range out {
		out[i] = float32(255 * r.Float64())
	}
	return out
}

func TestFloat32AgreesWithFloat64(t *testing.T) {
	_, net := mnist7(t)
	r := rand.New(rand.NewPCG(1, 2))
	var inputs []float32
	for i := 0; i < 3; i++ {
		image, _ := zooSet(t, i)
		inputs = append(inputs, image...)
	}
	inputs = append(inputs, randomImages(r, 3, 784)...)
	l32 := runLogits(t, net, 6, tensor.Float32, inputs)
	l64 := runLogits(t, net, 6, tensor.Float64, inputs)
	t.Logf("float32 vs float64: %.3g", relDiff(l32, l64, 10))
	if d := relDiff(l32, l64, 10); d > precisionTol {
		t.Errorf("float32 and float64 logits differ by %.3g relative (> %g)", d, precisionTol)
	}
	top32, _ := nn.TopTwo(l32, 10)
	top64, _ := nn.TopTwo(l64, 10)
	if !slices.Equal(top32, top64) {
		t.Errorf("labels float32 %v, float64 %v", top32, top64)
	}
}

// TestMNIST7MatchesPlainGo compares float64 inference with the plain-Go interpreter,
// which runs the file's own Reshape to 1x256 one example at a time, so this also
// checks the batch rewrite.
func TestMNIST7MatchesPlainGo(t *testing.T) {
	m, net := mnist7(t)
	r := rand.New(rand.NewPCG(3, 4))
	const n = 4
	inputs := randomImages(r, n, 784)
	image, _ := zooSet(t, 1)
	copy(inputs, image)
	got := runLogits(t, net, n, tensor.Float64, inputs)
	for i := 0; i < n; i++ {
		want := referenceValues(t, m, inputs, i, 784)["Plus214_Output_0"].Data
		t.Logf("example %d: %.3g", i, relDiff(got[i*10:(i+1)*10], want, 10))
		if d := relDiff(got[i*10:(i+1)*10], want, 10); d > referenceTol {
			t.Errorf("example %d: logits %v, reference %v: relative difference %.3g > %g", i, got[i*10:(i+1)*10], want, d, referenceTol)
		}
	}
}

// referenceValues runs example i of inputs (size values each, back to back) through
// the plain-Go reference and returns every value it computes, by name.
func referenceValues(t *testing.T, m *onnx.Model, inputs []float32, i, size int) map[string]*onnxtest.Tensor {
	t.Helper()
	x := make([]float64, size)
	for k := range x {
		x[k] = float64(inputs[i*size+k])
	}
	vals, _, err := onnxtest.Run(m, x, nil)
	if err != nil {
		t.Fatal(err)
	}
	return vals
}

func TestBatchRewrite(t *testing.T) {
	_, net := mnist7(t)
	var images [][]float32
	var alone [][]float64
	for i := 0; i < 3; i++ {
		image, _ := zooSet(t, i)
		images = append(images, image)
		alone = append(alone, runLogits(t, net, 1, tensor.Float32, image))
	}

	t.Run("copies", func(t *testing.T) {
		const k = 5
		var batch []float32
		for i := 0; i < k; i++ {
			batch = append(batch, images[0]...)
		}
		got := runLogits(t, net, k, tensor.Float32, batch)
		for i := 0; i < k; i++ {
			row := got[i*10 : (i+1)*10]
			if d := relDiff(row, alone[0], 10); d > batchTol {
				t.Errorf("row %d %v differs from the batch-1 logits %v by %.3g", i, row, alone[0], d)
			}
			if !slices.Equal(row, got[:10]) {
				t.Errorf("row %d %v differs from row 0 %v", i, row, got[:10])
			}
		}
	})

	// Copies cannot reveal a reshape that mixes examples; distinct images can.
	t.Run("distinct", func(t *testing.T) {
		order := []int{2, 0, 1, 2}
		var batch []float32
		for _, i := range order {
			batch = append(batch, images[i]...)
		}
		got := runLogits(t, net, len(order), tensor.Float32, batch)
		for row, i := range order {
			if d := relDiff(got[row*10:(row+1)*10], alone[i], 10); d > batchTol {
				t.Errorf("row %d (image %d): %v, alone %v: difference %.3g", row, i, got[row*10:(row+1)*10], alone[i], d)
			}
		}
	})
}

// TestRunnerReuse runs one Runner on different inputs in turn: reused tape-machine
// buffers must not leak one call's values into the next (onnx-go's Gemm writes into
// its bias at batch 1, so a second run there gives wrong logits).
func TestRunnerReuse(t *testing.T) {
	_, net := mnist7(t)
	r, err := nn.NewRunner(net, 1, tensor.Float32)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for round := 0; round < 2; round++ {
		for i := 0; i < 3; i++ {
			image, want := zooSet(t, i)
			got, err := r.Logits(image)
			if err != nil {
				t.Fatal(err)
			}
			if d := relDiff(got, want, 10); d > zooTol {
				t.Errorf("round %d set %d: relative difference %.3g", round, i, d)
			}
		}
	}
}

func TestRunnerRejectsWrongInput(t *testing.T) {
	_, net := mnist7(t)
	r, err := nn.NewRunner(net, 2, tensor.Float32)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Batch() != 2 {
		t.Errorf("Batch() = %d", r.Batch())
	}
	for _, n := range []int{0, 783, 784, 2*784 - 1, 2*784 + 1, 3 * 784} {
		if logits, err := r.Logits(make([]float32, n)); err == nil {
			t.Errorf("%d values for a batch of 2x784: no error, %d logits", n, len(logits))
		} else if !strings.Contains(err.Error(), "Input3") {
			t.Errorf("%d values: error %q does not name the input", n, err)
		}
	}
	if _, err := r.Logits(make([]float32, 2*784)); err != nil {
		t.Errorf("the right size: %v", err)
	}
	for _, batch := range []int{0, -1} {
		if _, err := nn.NewRunner(net, batch, tensor.Float32); err == nil {
			t.Errorf("NewRunner(batch %d): no error", batch)
		}
	}

	// Build checks the shape of the node it is given.
	for _, shape := range [][]int{{1, 1, 28, 27}, {1, 28, 28}, {1, 2, 28, 28}} {
		g := G.NewGraph()
		x := G.NewTensor(g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName("x"))
		if _, err := net.Build(g, x); err == nil {
			t.Errorf("Build with input shape %v: no error", shape)
		}
	}
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Int, 4, G.WithShape(1, 1, 28, 28), G.WithName("x"))
	if _, err := net.Build(g, x); err == nil {
		t.Error("Build with an int input: no error")
	}
}

// smallModels are the test-built classifiers and the name of the value that holds
// their logits (the input of a final Softmax, when there is one).
func smallModels(r *rand.Rand) map[string]struct {
	model  *onnx.Model
	logits string
} {
	conv := onnxtest.ConvNet(r)
	return map[string]struct {
		model  *onnx.Model
		logits string
	}{
		"mlp":  {onnxtest.MLP(r), onnxtest.MLPLogits},
		"conv": {conv, conv.Graph.Outputs[0].Name},
	}
}

func TestSmallModelsMatchPlainGo(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for name, tc := range smallModels(r) {
		t.Run(name, func(t *testing.T) {
			// Through the file format, as a user's model arrives.
			m, err := onnx.Decode(onnx.Encode(tc.model))
			if err != nil {
				t.Fatal(err)
			}
			net, err := nn.Compile(m)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			size := net.InputSize()
			const batch = 7
			inputs := make([]float32, batch*size)
			for i := range inputs {
				inputs[i] = float32(r.Float64())
			}
			l64 := runLogits(t, net, batch, tensor.Float64, inputs)
			l32 := runLogits(t, net, batch, tensor.Float32, inputs)
			if d := relDiff(l32, l64, net.Classes); d > precisionTol {
				t.Errorf("float32 vs float64: %.3g", d)
			}
			for i := 0; i < batch; i++ {
				vals := referenceValues(t, m, inputs, i, size)
				want := vals[tc.logits].Data
				got := l64[i*net.Classes : (i+1)*net.Classes]
				if d := relDiff(got, want, net.Classes); d > referenceTol {
					t.Errorf("example %d: logits %v, reference %v (difference %.3g)", i, got, want, d)
				}
				// The model's own output is the softmax of the logits (when it ends in one).
				out := vals[m.Graph.Outputs[0].Name].Data
				if argmax(out) != argmax(got) {
					t.Errorf("example %d: label %d, the model's output says %d", i, argmax(got), argmax(out))
				}
			}
		})
	}
}

// TestSmallModelShapes checks what Compile reports of the test-built models.
func TestSmallModelShapes(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	mlp, err := nn.Compile(onnxtest.MLP(r))
	if err != nil {
		t.Fatal(err)
	}
	if mlp.InputName != "image" || !slices.Equal(mlp.InputShape, []int{1, 4, 4}) || mlp.Classes != 5 {
		t.Errorf("mlp: %s %v, %d classes", mlp.InputName, mlp.InputShape, mlp.Classes)
	}
	conv, err := nn.Compile(onnxtest.ConvNet(r))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(conv.InputShape, []int{1, 10, 10}) || conv.Classes != 4 {
		t.Errorf("conv: %v, %d classes", conv.InputShape, conv.Classes)
	}
}

// TestOpsMatchPlainGo runs one-op-at-a-time models through the supported ops and
// attribute forms, each against the reference.
func TestOpsMatchPlainGo(t *testing.T) {
	type model func(b *onnxtest.Builder) []int64 // adds nodes, returns the output dims
	tests := map[string]struct {
		input []int64
		build model
	}{
		"conv stride 2 SAME_UPPER": {[]int64{-1, 2, 7, 7}, func(b *onnxtest.Builder) []int64 {
			w := b.Weight("w", 0, 0.5, 3, 2, 3, 3)
			h := b.Node("Conv", []string{b.Last(), w}, onnxtest.AttrInts("kernel_shape", 3, 3), onnxtest.AttrInts("strides", 2, 2), onnxtest.AttrString("auto_pad", "SAME_UPPER"))
			b.Node("Flatten", []string{h})
			return []int64{-1, 3 * 4 * 4}
		}},
		"conv dilation 2 VALID with bias": {[]int64{-1, 1, 8, 8}, func(b *onnxtest.Builder) []int64 {
			w := b.Weight("w", 0, 0.5, 2, 1, 3, 3)
			bias := b.Weight("bias", 0, 0.5, 2)
			h := b.Node("Conv", []string{b.Last(), w, bias}, onnxtest.AttrInts("dilations", 2, 2), onnxtest.AttrString("auto_pad", "VALID"))
			b.Node("Flatten", []string{h})
			return []int64{-1, 2 * 4 * 4}
		}},
		"maxpool pads 1 stride 2": {[]int64{-1, 2, 6, 6}, func(b *onnxtest.Builder) []int64 {
			h := b.Node("MaxPool", []string{b.Last()}, onnxtest.AttrInts("kernel_shape", 3, 3), onnxtest.AttrInts("strides", 2, 2), onnxtest.AttrInts("pads", 1, 1, 1, 1))
			b.Node("Flatten", []string{h})
			return []int64{-1, 2 * 3 * 3}
		}},
		"gemm transA-free with scalar-broadcast bias": {[]int64{-1, 6}, func(b *onnxtest.Builder) []int64 {
			w := b.Weight("w", 0, 0.5, 4, 6)
			c := b.Weight("c", 0, 0.5, 1)
			b.Node("Gemm", []string{b.Last(), w, c}, onnxtest.AttrInt("transB", 1), onnxtest.AttrFloat("beta", -2))
			return []int64{-1, 4}
		}},
		"matmul add sub mul div": {[]int64{-1, 5}, func(b *onnxtest.Builder) []int64 {
			w := b.Weight("w", 0, 0.5, 5, 3)
			h := b.Node("MatMul", []string{b.Last(), w})
			h = b.Node("Add", []string{h, b.Weight("a", 0, 1, 3)})
			h = b.Node("Sub", []string{b.Weight("s", 0, 1, 1, 3), h})
			h = b.Node("Mul", []string{h, b.Weight("m", 0, 1, 1)})
			b.Node("Div", []string{h, b.Uniform("d", 1, 2, 3)})
			return []int64{-1, 3}
		}},
		"batchnorm 4-D then reshape with 0 and -1": {[]int64{-1, 3, 2, 2}, func(b *onnxtest.Builder) []int64 {
			h := b.Node("BatchNormalization", []string{b.Last(),
				b.Uniform("scale", 0.5, 2, 3), b.Weight("bias", 0, 1, 3), b.Weight("mean", 0, 1, 3), b.Uniform("var", 0.1, 2, 3)})
			b.Node("Reshape", []string{h, b.Ints("shape", 0, -1)})
			return []int64{-1, 12}
		}},
		"flatten axis 2 then gemm": {[]int64{-1, 1, 2, 3}, func(b *onnxtest.Builder) []int64 {
			h := b.Node("Flatten", []string{b.Last()}, onnxtest.AttrInt("axis", 2))
			h = b.Node("Identity", []string{h})
			h = b.Node("Dropout", []string{h})
			b.Node("Gemm", []string{h, b.Weight("w", 0, 1, 6, 2)}, onnxtest.AttrFloat("alpha", 0.25))
			return []int64{-1, 2}
		}},
	}
	r := rand.New(rand.NewPCG(9, 10))
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b := onnxtest.NewBuilder(r, "x", tc.input...)
			m := b.Model(tc.build(b)...)
			net, err := nn.Compile(m)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			const batch = 3
			size := net.InputSize()
			inputs := make([]float32, batch*size)
			for i := range inputs {
				inputs[i] = float32(2*r.Float64() - 1)
			}
			got := runLogits(t, net, batch, tensor.Float64, inputs)
			for i := 0; i < batch; i++ {
				want := referenceValues(t, m, inputs, i, size)[m.Graph.Outputs[0].Name].Data
				row := got[i*net.Classes : (i+1)*net.Classes]
				if d := relDiff(row, want, net.Classes); d > referenceTol {
					t.Errorf("example %d: %v, reference %v (difference %.3g)", i, row, want, d)
				}
			}
		})
	}
}

func TestCompileRejects(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	conv := func(attrs ...onnx.Attribute) func(b *onnxtest.Builder) {
		return func(b *onnxtest.Builder) {
			w := b.Weight("w", 0, 1, 4, 2, 3, 3)
			h := b.Node("Conv", []string{b.Last(), w}, attrs...)
			b.Node("Flatten", []string{h})
		}
	}
	tests := map[string]struct {
		build       func(b *onnxtest.Builder)
		edit        func(m *onnx.Model)
		unsupported bool     // must wrap nn.ErrUnsupported
		want        []string // parts of the message
	}{
		"LSTM": {
			build: func(b *onnxtest.Builder) {
				h := b.Node("Flatten", []string{b.Last()})
				b.Node("LSTM", []string{h, b.Weight("W", 0, 1, 1, 4, 32)})
			},
			unsupported: true,
			want:        []string{"node LSTM_0", "op LSTM", "not supported"},
		},
		"custom domain": {
			build:       func(b *onnxtest.Builder) { b.Node("Flatten", []string{b.Last()}) },
			edit:        func(m *onnx.Model) { m.Graph.Nodes[0].Domain = "com.microsoft" },
			unsupported: true,
			want:        []string{"Flatten_0", "com.microsoft"},
		},
		"unknown padding mode": {
			build: func(b *onnxtest.Builder) {
				h := b.Node("Pad", []string{b.Last()}, onnxtest.AttrInts("pads", 0, 0, 1, 1, 0, 0, 1, 1), onnxtest.AttrString("mode", "symmetric"))
				b.Node("Flatten", []string{h})
			},
			unsupported: true,
			want:        []string{"node Pad_0", "op Pad", "symmetric"},
		},
		"MatMul of two vectors": {
			build: func(b *onnxtest.Builder) {
				h := b.Node("Flatten", []string{b.Last()})
				s := b.Node("MatMul", []string{b.Weight("u", 0, 1, 5), b.Weight("v", 0, 1, 5)})
				b.Node("Mul", []string{h, s})
			},
			unsupported: true,
			want:        []string{"node MatMul_0", "op MatMul", "scalar"},
		},
		"gather indices computed from the data": {
			build: func(b *onnxtest.Builder) {
				h := b.Node("Flatten", []string{b.Last()})
				b.Node("Gather", []string{h, h}, onnxtest.AttrInt("axis", 1))
			},
			unsupported: true,
			want:        []string{"node Gather_0", "op Gather", "constant integer"},
		},
		"maxpool indices": {
			build: func(b *onnxtest.Builder) {
				h := b.Node("MaxPool", []string{b.Last()}, onnxtest.AttrInts("kernel_shape", 2, 2))
				b.Node("Flatten", []string{h})
			},
			edit:        func(m *onnx.Model) { m.Graph.Nodes[0].Outputs = append(m.Graph.Nodes[0].Outputs, "indices") },
			unsupported: true,
			want:        []string{"node MaxPool_0", "Indices"},
		},
		"slice bounds computed from the data": {
			build: func(b *onnxtest.Builder) {
				h := b.Node("Flatten", []string{b.Last()})
				b.Node("Slice", []string{h, b.Ints("starts", 0), h})
			},
			unsupported: true,
			want:        []string{"node Slice_0", "op Slice", "constant integer"},
		},
		"reshape target computed from the data": {
			build: func(b *onnxtest.Builder) {
				h := b.Node("Flatten", []string{b.Last()})
				b.Node("Reshape", []string{h, h})
			},
			unsupported: true,
			want:        []string{"node Reshape_0", "constant integer"},
		},
		"unknown auto_pad": {
			build:       conv(onnxtest.AttrString("auto_pad", "SIDEWAYS")),
			unsupported: true,
			want:        []string{"node Conv_0", "SIDEWAYS"},
		},
		"opset 22": {
			build:       func(b *onnxtest.Builder) { b.Node("Flatten", []string{b.Last()}) },
			edit:        func(m *onnx.Model) { m.Opsets[""] = 22 },
			unsupported: true,
			want:        []string{"opset 22"},
		},
		"two inputs": {
			build: func(b *onnxtest.Builder) { b.Node("Add", []string{b.Last(), "y"}) },
			edit: func(m *onnx.Model) {
				m.Graph.Inputs = append(m.Graph.Inputs, onnx.ValueInfo{Name: "y", ElemType: onnx.DataTypeFloat, Dims: []onnx.Dim{{Value: 1}, {Value: 2}}})
			},
			unsupported: true,
			want:        []string{"exactly one input", "x, y"},
		},
		"double input": {
			build:       func(b *onnxtest.Builder) { b.Node("Flatten", []string{b.Last()}) },
			edit:        func(m *onnx.Model) { m.Graph.Inputs[0].ElemType = onnx.DataTypeDouble },
			unsupported: true,
			want:        []string{"DOUBLE"},
		},
		"symbolic spatial dim": {
			build:       func(b *onnxtest.Builder) { b.Node("Flatten", []string{b.Last()}) },
			edit:        func(m *onnx.Model) { m.Graph.Inputs[0].Dims[2] = onnx.Dim{Value: -1, Param: "height"} },
			unsupported: true,
			want:        []string{"height"},
		},
		"one class": {
			build: func(b *onnxtest.Builder) {
				h := b.Node("Flatten", []string{b.Last()})
				b.Node("MatMul", []string{h, b.Weight("w", 0, 1, 50, 1)})
			},
			unsupported: true,
			want:        []string{"1 classes"},
		},
		"shapes that do not multiply": {
			build: func(b *onnxtest.Builder) {
				h := b.Node("Flatten", []string{b.Last()})
				b.Node("MatMul", []string{h, b.Weight("w", 0, 1, 49, 3)})
			},
			want: []string{"node MatMul_0", "op MatMul"},
		},
		"missing weight": {
			build: func(b *onnxtest.Builder) {
				h := b.Node("Flatten", []string{b.Last()})
				b.Node("MatMul", []string{h, "nowhere"})
			},
			want: []string{"MatMul_0", "nowhere"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b := onnxtest.NewBuilder(r, "x", -1, 2, 5, 5)
			tc.build(b)
			m := b.Model(-1, 3)
			if tc.edit != nil {
				tc.edit(m)
			}
			// Through the file format, as a user's model arrives.
			decoded, err := onnx.Decode(onnx.Encode(m))
			if err != nil {
				t.Fatal(err)
			}
			net, err := compileNoPanic(decoded)
			if err == nil {
				t.Fatalf("Compile accepted it: %s -> %d classes", net.InputName, net.Classes)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if tc.unsupported && !errors.Is(err, nn.ErrUnsupported) {
				t.Errorf("error %q does not wrap nn.ErrUnsupported", err)
			}
		})
	}
}

// compileNoPanic turns a panic into a test-visible error: Compile must never panic.
func compileNoPanic(m *onnx.Model) (net *nn.Network, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("Compile panicked: %v", p)
		}
	}()
	return nn.Compile(m)
}

func TestTopTwo(t *testing.T) {
	tests := map[string]struct {
		logits  []float64
		classes int
		labels  []int
		margins []float64
	}{
		"clear winner":      {[]float64{1, 5, 2}, 3, []int{1}, []float64{3}},
		"tie goes low":      {[]float64{4, 1, 4}, 3, []int{0}, []float64{0}},
		"winner first":      {[]float64{9, -1, 8.5}, 3, []int{0}, []float64{0.5}},
		"negative logits":   {[]float64{-3, -7, -2.5, -9}, 4, []int{2}, []float64{0.5}},
		"two rows":          {[]float64{0, 1, 3, 2}, 2, []int{1, 0}, []float64{1, 1}},
		"second below best": {[]float64{2, 7, 7.25}, 3, []int{2}, []float64{0.25}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			labels, margins := nn.TopTwo(tc.logits, tc.classes)
			if !slices.Equal(labels, tc.labels) || !slices.Equal(margins, tc.margins) {
				t.Errorf("TopTwo = %v, %v; want %v, %v", labels, margins, tc.labels, tc.margins)
			}
		})
	}
}

// TestLogSoftmax checks the row-wise log-softmax against the definition, on rows
// whose scales differ by thousands (mnist-7's logits do): each row must be shifted by
// its own maximum.
func TestLogSoftmax(t *testing.T) {
	rows := [][]float64{
		{0.5, -1, 2, 0},
		{5000, 4990, -3000, 4999.5},
		{-8000, -7990, -7995, -9000},
		{1e-3, 2e-3, 0, -1e-3},
	}
	var flat []float64
	for _, r := range rows {
		flat = append(flat, r...)
	}
	for _, dtype := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		t.Run(dtype.String(), func(t *testing.T) {
			g := G.NewGraph()
			var backing any = slices.Clone(flat)
			if dtype == tensor.Float32 {
				f := make([]float32, len(flat))
				for i, v := range flat {
					f[i] = float32(v)
				}
				backing = f
			}
			x := G.NewMatrix(g, dtype, G.WithShape(len(rows), 4), G.WithName("x"),
				G.WithValue(tensor.New(tensor.WithShape(len(rows), 4), tensor.WithBacking(backing))))
			ls, err := nn.LogSoftmax(x)
			if err != nil {
				t.Fatal(err)
			}
			sm, err := nn.Softmax(x)
			if err != nil {
				t.Fatal(err)
			}
			var lsv, smv G.Value
			G.Read(ls, &lsv)
			G.Read(sm, &smv)
			vm := G.NewTapeMachine(g)
			defer vm.Close()
			if err := vm.RunAll(); err != nil {
				t.Fatal(err)
			}
			tol := 1e-12
			if dtype == tensor.Float32 {
				tol = 1e-5
			}
			got := toF64(lsv.Data())
			probs := toF64(smv.Data())
			for i, row := range rows {
				top := slices.Max(row)
				sum := 0.0
				for _, v := range row {
					sum += math.Exp(v - top)
				}
				for j, v := range row {
					want := v - top - math.Log(sum)
					if g := got[i*4+j]; math.Abs(g-want) > tol*math.Max(1, math.Abs(want)) {
						t.Errorf("row %d col %d: log-softmax %g, want %g", i, j, g, want)
					}
					if p := probs[i*4+j]; math.Abs(p-math.Exp(want)) > tol {
						t.Errorf("row %d col %d: softmax %g, want %g", i, j, p, math.Exp(want))
					}
				}
			}
			if _, err := nn.LogSoftmax(G.NewVector(g, dtype, G.WithShape(3), G.WithName("v"))); err == nil {
				t.Error("LogSoftmax of a vector: no error")
			}
		})
	}
}

func toF64(data any) []float64 {
	switch d := data.(type) {
	case []float64:
		return d
	case []float32:
		out := make([]float64, len(d))
		for i, v := range d {
			out[i] = float64(v)
		}
		return out
	}
	panic(fmt.Sprintf("%T", data))
}
