package nn_test

import (
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/fragile-operator/fragile-operator/internal/onnxtest"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// opCase is one op in one attribute or input form, inside a small classifier:
// the body reads the input (batch x 4 x 6 x 6 unless dims says otherwise) and its
// output is flattened into a Gemm to three classes, so the loss of checkGradients
// sees every output element.
type opCase struct {
	opset int64
	dims  []int64 // one example's shape
	body  func(b *onnxtest.Builder) string
}

// model builds the case's classifier; the head's width is read by compiling the
// body alone (its flattened output is a (batch, features) "classifier" too).
func (c opCase) model(t *testing.T, seed uint64) *onnx.Model {
	t.Helper()
	dims := c.dims
	if dims == nil {
		dims = []int64{4, 6, 6}
	}
	build := func(head bool, features int64) *onnx.Model {
		r := rand.New(rand.NewPCG(seed, 7))
		b := onnxtest.NewBuilder(r, "x", append([]int64{-1}, dims...)...)
		h := b.Node("Flatten", []string{c.body(b)})
		if head {
			w := b.Weight("head.weight", 0, 0.5, features, 3)
			bias := b.Weight("head.bias", 0, 0.1, 3)
			b.Node("Gemm", []string{h, w, bias})
		}
		m := b.Model(-1, 3)
		if c.opset != 0 {
			m.Opsets[""] = c.opset
		}
		return m
	}
	net, err := nn.Compile(build(false, 0))
	if err != nil {
		t.Fatal(err)
	}
	return build(true, int64(net.Classes))
}

func convWeight(b *onnxtest.Builder, dims ...int64) string {
	return b.Weight("conv.weight", 0, 0.4, dims...)
}

// volume is one example's shape for the 3-D spatial forms: (C, D, H, W).
var volume = []int64{4, 4, 5, 4}

// opCases are the op forms of issue 9, each checked by TestOpGradients.
var opCases = map[string]opCase{
	"Conv group 2 with bias": {body: func(b *onnxtest.Builder) string {
		return b.Node("Conv", []string{b.Last(), convWeight(b, 6, 2, 3, 3), b.Weight("conv.bias", 0, 0.1, 6)},
			onnxtest.AttrInt("group", 2), onnxtest.AttrInts("pads", 1, 1, 1, 1))
	}},
	"Conv depthwise, stride 2, dilation 2, asymmetric pads": {body: func(b *onnxtest.Builder) string {
		return b.Node("Conv", []string{b.Last(), convWeight(b, 4, 1, 3, 3)},
			onnxtest.AttrInt("group", 4), onnxtest.AttrInts("strides", 2, 2), onnxtest.AttrInts("dilations", 2, 2), onnxtest.AttrInts("pads", 0, 1, 2, 1))
	}},
	"Conv depthwise multiplier 2": {body: func(b *onnxtest.Builder) string {
		return b.Node("Conv", []string{b.Last(), convWeight(b, 8, 1, 3, 3)}, onnxtest.AttrInt("group", 4))
	}},
	"Conv auto_pad SAME_UPPER": {body: func(b *onnxtest.Builder) string {
		return b.Node("Conv", []string{b.Last(), convWeight(b, 3, 4, 2, 2)}, onnxtest.AttrString("auto_pad", "SAME_UPPER"))
	}},
	"Conv auto_pad SAME_LOWER stride 2": {body: func(b *onnxtest.Builder) string {
		return b.Node("Conv", []string{b.Last(), convWeight(b, 3, 4, 3, 3)}, onnxtest.AttrString("auto_pad", "SAME_LOWER"), onnxtest.AttrInts("strides", 2, 2))
	}},
	"Conv auto_pad VALID": {body: func(b *onnxtest.Builder) string {
		return b.Node("Conv", []string{b.Last(), convWeight(b, 3, 4, 3, 3)}, onnxtest.AttrString("auto_pad", "VALID"), onnxtest.AttrInts("pads", 1, 1, 1, 1))
	}},
	"Conv dilation 2 one group": {body: func(b *onnxtest.Builder) string {
		return b.Node("Conv", []string{b.Last(), convWeight(b, 3, 4, 3, 3)}, onnxtest.AttrInts("dilations", 2, 2), onnxtest.AttrInts("pads", 1, 1, 1, 1))
	}},
	"Conv 1-D group 2 asymmetric pads": {dims: []int64{4, 9}, body: func(b *onnxtest.Builder) string {
		return b.Node("Conv", []string{b.Last(), convWeight(b, 4, 2, 3), b.Weight("conv.bias", 0, 0.1, 4)},
			onnxtest.AttrInt("group", 2), onnxtest.AttrInts("pads", 2, 1), onnxtest.AttrInts("strides", 2))
	}},
	"MaxPool 1-D ceil_mode": {dims: []int64{4, 9}, body: func(b *onnxtest.Builder) string {
		return b.Node("MaxPool", []string{b.Last()}, onnxtest.AttrInts("kernel_shape", 2), onnxtest.AttrInts("strides", 2), onnxtest.AttrInt("ceil_mode", 1))
	}},
	"AveragePool 1-D pads": {dims: []int64{4, 9}, body: func(b *onnxtest.Builder) string {
		return b.Node("AveragePool", []string{b.Last()}, onnxtest.AttrInts("kernel_shape", 3), onnxtest.AttrInts("pads", 1, 1))
	}},
	"GlobalAveragePool 1-D": {dims: []int64{4, 9}, body: func(b *onnxtest.Builder) string {
		return b.Node("GlobalAveragePool", []string{b.Last()})
	}},
	"Conv 3-D group 2, bias, strides, dilations, asymmetric pads": {dims: volume, body: func(b *onnxtest.Builder) string {
		return b.Node("Conv", []string{b.Last(), convWeight(b, 4, 2, 2, 3, 2), b.Weight("conv.bias", 0, 0.1, 4)},
			onnxtest.AttrInt("group", 2), onnxtest.AttrInts("strides", 1, 2, 1), onnxtest.AttrInts("dilations", 2, 1, 1), onnxtest.AttrInts("pads", 1, 0, 1, 0, 1, 2))
	}},
	"Conv 3-D depthwise": {dims: volume, body: func(b *onnxtest.Builder) string {
		return b.Node("Conv", []string{b.Last(), convWeight(b, 4, 1, 2, 2, 2)}, onnxtest.AttrInt("group", 4))
	}},
	"Conv 3-D auto_pad SAME_UPPER stride 2": {dims: volume, body: func(b *onnxtest.Builder) string {
		return b.Node("Conv", []string{b.Last(), convWeight(b, 3, 4, 3, 2, 3), b.Weight("conv.bias", 0, 0.1, 3)},
			onnxtest.AttrString("auto_pad", "SAME_UPPER"), onnxtest.AttrInts("strides", 2, 1, 2))
	}},
	"MaxPool 3-D ceil_mode, dilations, asymmetric pads": {dims: volume, body: func(b *onnxtest.Builder) string {
		return b.Node("MaxPool", []string{b.Last()}, onnxtest.AttrInts("kernel_shape", 2, 2, 3), onnxtest.AttrInts("strides", 2, 1, 2),
			onnxtest.AttrInts("dilations", 1, 2, 1), onnxtest.AttrInts("pads", 1, 0, 0, 0, 1, 1), onnxtest.AttrInt("ceil_mode", 1))
	}},
	"MaxPool 3-D auto_pad SAME_LOWER": {dims: volume, body: func(b *onnxtest.Builder) string {
		return b.Node("MaxPool", []string{b.Last()}, onnxtest.AttrInts("kernel_shape", 2, 3, 2), onnxtest.AttrInts("strides", 2, 2, 2), onnxtest.AttrString("auto_pad", "SAME_LOWER"))
	}},
	"AveragePool 3-D count_include_pad ceil_mode": {dims: volume, body: func(b *onnxtest.Builder) string {
		return b.Node("AveragePool", []string{b.Last()}, onnxtest.AttrInts("kernel_shape", 3, 2, 3), onnxtest.AttrInts("strides", 2, 2, 2),
			onnxtest.AttrInts("pads", 1, 1, 0, 1, 0, 1), onnxtest.AttrInt("count_include_pad", 1), onnxtest.AttrInt("ceil_mode", 1))
	}},
	"AveragePool 3-D pads excluded": {dims: volume, body: func(b *onnxtest.Builder) string {
		return b.Node("AveragePool", []string{b.Last()}, onnxtest.AttrInts("kernel_shape", 3, 3, 2), onnxtest.AttrInts("pads", 1, 1, 1, 1, 1, 0))
	}},
	"GlobalAveragePool 3-D": {dims: volume, body: func(b *onnxtest.Builder) string { return b.Node("GlobalAveragePool", []string{b.Last()}) }},
	"GlobalMaxPool 3-D":     {dims: volume, body: func(b *onnxtest.Builder) string { return b.Node("GlobalMaxPool", []string{b.Last()}) }},
	"MaxPool ceil_mode": {body: func(b *onnxtest.Builder) string {
		return b.Node("MaxPool", []string{b.Last()}, onnxtest.AttrInts("kernel_shape", 3, 3), onnxtest.AttrInts("strides", 2, 2), onnxtest.AttrInt("ceil_mode", 1))
	}},
	"MaxPool dilations and asymmetric pads": {body: func(b *onnxtest.Builder) string {
		return b.Node("MaxPool", []string{b.Last()}, onnxtest.AttrInts("kernel_shape", 2, 2), onnxtest.AttrInts("dilations", 2, 2), onnxtest.AttrInts("pads", 1, 0, 0, 1))
	}},
	"MaxPool auto_pad SAME_UPPER": {body: func(b *onnxtest.Builder) string {
		return b.Node("MaxPool", []string{b.Last()}, onnxtest.AttrInts("kernel_shape", 2, 2), onnxtest.AttrInts("strides", 2, 2), onnxtest.AttrString("auto_pad", "SAME_UPPER"))
	}},
	"AveragePool pads excluded": {body: func(b *onnxtest.Builder) string {
		return b.Node("AveragePool", []string{b.Last()}, onnxtest.AttrInts("kernel_shape", 3, 3), onnxtest.AttrInts("strides", 2, 2), onnxtest.AttrInts("pads", 1, 1, 1, 1))
	}},
	"AveragePool count_include_pad ceil_mode": {body: func(b *onnxtest.Builder) string {
		return b.Node("AveragePool", []string{b.Last()}, onnxtest.AttrInts("kernel_shape", 3, 3), onnxtest.AttrInts("strides", 2, 2), onnxtest.AttrInts("pads", 1, 1, 1, 1),
			onnxtest.AttrInt("count_include_pad", 1), onnxtest.AttrInt("ceil_mode", 1))
	}},
	"AveragePool auto_pad SAME_LOWER": {body: func(b *onnxtest.Builder) string {
		return b.Node("AveragePool", []string{b.Last()}, onnxtest.AttrInts("kernel_shape", 2, 2), onnxtest.AttrString("auto_pad", "SAME_LOWER"))
	}},
	"GlobalAveragePool": {body: func(b *onnxtest.Builder) string { return b.Node("GlobalAveragePool", []string{b.Last()}) }},
	"GlobalMaxPool":     {body: func(b *onnxtest.Builder) string { return b.Node("GlobalMaxPool", []string{b.Last()}) }},
	"Concat axis 1": {body: func(b *onnxtest.Builder) string {
		x := b.Last()
		return b.Node("Concat", []string{x, b.Node("Sigmoid", []string{x}), x}, onnxtest.AttrInt("axis", 1))
	}},
	"Concat axis 1, unequal parts": {body: func(b *onnxtest.Builder) string {
		x := b.Last()
		y := b.Node("Conv", []string{x, convWeight(b, 2, 4, 1, 1)})
		z := b.Node("Conv", []string{x, b.Weight("conv2.weight", 0, 0.4, 3, 4, 1, 1)})
		return b.Node("Concat", []string{y, b.Node("Tanh", []string{x}), z, y, b.Node("Sigmoid", []string{z})}, onnxtest.AttrInt("axis", 1))
	}},
	"Concat chain sharing inputs (densenet)": {body: func(b *onnxtest.Builder) string {
		x := b.Last()
		parts := []string{x}
		for i := range 4 {
			c := b.Node("Concat", append([]string(nil), parts...), onnxtest.AttrInt("axis", 1))
			h := b.Node("Relu", []string{c})
			y := b.Node("Conv", []string{h, b.Weight("dense"+string(rune('0'+i))+".weight", 0, 0.4, 2, int64(4+2*i), 1, 1)})
			parts = append(parts, y)
		}
		return b.Node("Concat", parts, onnxtest.AttrInt("axis", 1))
	}},
	"Concat of twelve": {body: func(b *onnxtest.Builder) string {
		x := b.Last()
		var parts []string
		for i := range 12 {
			parts = append(parts, b.Node("Conv", []string{x, b.Weight("w"+string(rune('a'+i)), 0, 0.4, int64(1+i%3), 4, 1, 1)}))
		}
		return b.Node("Concat", parts, onnxtest.AttrInt("axis", 1))
	}},
	"Concat axis -1": {body: func(b *onnxtest.Builder) string {
		x := b.Last()
		return b.Node("Concat", []string{x, b.Node("Tanh", []string{x})}, onnxtest.AttrInt("axis", -1))
	}},
	"Clip attributes (opset 6)": {opset: 6, body: func(b *onnxtest.Builder) string {
		return b.Node("Clip", []string{b.Last()}, onnxtest.AttrFloat("min", -0.5), onnxtest.AttrFloat("max", 0.7))
	}},
	"Clip inputs (opset 13)": {body: func(b *onnxtest.Builder) string {
		x := b.Last()
		return b.Node("Clip", []string{x, b.FloatConstant(nil, -0.5), b.FloatConstant(nil, 0.7)})
	}},
	"Clip max only": {body: func(b *onnxtest.Builder) string {
		x := b.Last()
		return b.Node("Clip", []string{x, "", b.FloatConstant(nil, 0.5)})
	}},
	"Clip min only": {body: func(b *onnxtest.Builder) string {
		x := b.Last()
		return b.Node("Clip", []string{x, b.FloatConstant(nil, -0.3)})
	}},
	"HardSigmoid default": {body: func(b *onnxtest.Builder) string {
		return b.Node("HardSigmoid", []string{b.Node("Mul", []string{b.Last(), b.FloatConstant(nil, 4)})})
	}},
	"HardSigmoid alpha beta": {body: func(b *onnxtest.Builder) string {
		return b.Node("HardSigmoid", []string{b.Last()}, onnxtest.AttrFloat("alpha", 0.5), onnxtest.AttrFloat("beta", 0.4))
	}},
	"HardSwish": {body: func(b *onnxtest.Builder) string {
		return b.Node("HardSwish", []string{b.Node("Mul", []string{b.Last(), b.FloatConstant(nil, 4)})})
	}},
	"Sigmoid Mul (SiLU)": {body: func(b *onnxtest.Builder) string {
		x := b.Last()
		return b.Node("Mul", []string{x, b.Node("Sigmoid", []string{x})})
	}},
	"Erf": {body: func(b *onnxtest.Builder) string { return b.Node("Erf", []string{b.Last()}) }},
	"Pow": {body: func(b *onnxtest.Builder) string {
		return b.Node("Pow", []string{b.Last(), b.FloatConstant(nil, 3)})
	}},
	"Pow exponent weight, broadcast": {body: func(b *onnxtest.Builder) string {
		base := b.Node("Sigmoid", []string{b.Last()})
		return b.Node("Pow", []string{base, b.Weight("exponent", 1.5, 0.5, 6)})
	}},
	"Pow exponent weight, 5-D broadcast": {dims: volume, body: func(b *onnxtest.Builder) string {
		base := b.Node("Sigmoid", []string{b.Last()})
		return b.Node("Pow", []string{base, b.Weight("exponent", 1.5, 0.5, 4, 1, 5, 1)})
	}},
	"Pow exponent computed from the input": {body: func(b *onnxtest.Builder) string {
		x := b.Last()
		return b.Node("Pow", []string{b.Node("Sigmoid", []string{x}), b.Node("Tanh", []string{x})})
	}},
	"Pow integer exponent tensor": {body: func(b *onnxtest.Builder) string {
		return b.Node("Pow", []string{b.Last(), b.IntConstant(1, 2, 3, 0, 2, 1)})
	}},
	"Pow weight base, exponent from the input": {body: func(b *onnxtest.Builder) string {
		return b.Node("Pow", []string{b.Uniform("base", 0.5, 2, 6), b.Node("Tanh", []string{b.Last()})})
	}},
	"MatMul batched by a matrix": {body: func(b *onnxtest.Builder) string {
		return b.Node("MatMul", []string{b.Last(), b.Weight("matmul.weight", 0, 0.4, 6, 5)})
	}},
	"MatMul batched, both batched": {body: func(b *onnxtest.Builder) string {
		return b.Node("MatMul", []string{b.Last(), b.Weight("matmul.weight", 0, 0.4, 4, 6, 3)})
	}},
	"MatMul 5-D, leading axes broadcast": {dims: volume, body: func(b *onnxtest.Builder) string {
		return b.Node("MatMul", []string{b.Last(), b.Weight("matmul.weight", 0, 0.4, 4, 1, 4, 3)})
	}},
	"MatMul of two computed values": {body: func(b *onnxtest.Builder) string {
		x := b.Last()
		return b.Node("MatMul", []string{x, b.Node("Transpose", []string{b.Node("Tanh", []string{x})}, onnxtest.AttrInts("perm", 0, 1, 3, 2))})
	}},
	"MatMul by a vector": {body: func(b *onnxtest.Builder) string {
		return b.Node("MatMul", []string{b.Last(), b.Weight("matmul.weight", 0, 0.4, 6)})
	}},
	"MatMul of a vector": {body: func(b *onnxtest.Builder) string {
		return b.Node("MatMul", []string{b.Weight("matmul.weight", 0, 0.4, 6), b.Last()})
	}},
	"Pad attributes (opset 2)": {opset: 2, body: func(b *onnxtest.Builder) string {
		return b.Node("Pad", []string{b.Last()}, onnxtest.AttrInts("pads", 0, 0, 1, 2, 0, 1, 0, 1), onnxtest.AttrFloat("value", 0.25))
	}},
	"Pad inputs (opset 13), crop": {body: func(b *onnxtest.Builder) string {
		x := b.Last()
		return b.Node("Pad", []string{x, b.IntConstant(0, 0, 1, -1, 0, 0, -2, 2), b.FloatConstant(nil, -0.5)})
	}},
	"Pad reflect, past one reflection": {body: func(b *onnxtest.Builder) string {
		return b.Node("Pad", []string{b.Last(), b.IntConstant(0, 0, 2, 7, 0, 1, 3, 1)}, onnxtest.AttrString("mode", "reflect"))
	}},
	"Pad edge (opset 2 attributes)": {opset: 2, body: func(b *onnxtest.Builder) string {
		return b.Node("Pad", []string{b.Last()}, onnxtest.AttrInts("pads", 0, 1, 2, 0, 0, 0, 1, 3), onnxtest.AttrString("mode", "edge"))
	}},
	"Pad wrap": {opset: 19, body: func(b *onnxtest.Builder) string {
		return b.Node("Pad", []string{b.Last(), b.IntConstant(0, 0, 1, 8, 0, 0, 4, 1)}, onnxtest.AttrString("mode", "wrap"))
	}},
	"Reshape shape attribute (opset 4)": {opset: 4, body: func(b *onnxtest.Builder) string {
		return b.Node("Reshape", []string{b.Last()}, onnxtest.AttrInts("shape", -1, 6, 24))
	}},
	"Transpose NHWC": {body: func(b *onnxtest.Builder) string {
		return b.Node("Transpose", []string{b.Last()}, onnxtest.AttrInts("perm", 0, 2, 3, 1))
	}},
	"Slice attributes (opset 9)": {opset: 9, body: func(b *onnxtest.Builder) string {
		return b.Node("Slice", []string{b.Last()}, onnxtest.AttrInts("starts", 1, -4), onnxtest.AttrInts("ends", 3, 1000), onnxtest.AttrInts("axes", 1, 3))
	}},
	"Slice inputs with steps and INT_MAX": {body: func(b *onnxtest.Builder) string {
		x := b.Last()
		return b.Node("Slice", []string{x, b.IntConstant(0, 1), b.IntConstant(math.MaxInt64, -1), b.IntConstant(2, 3), b.IntConstant(2, 1)})
	}},
	"Slice negative step": {body: func(b *onnxtest.Builder) string {
		x := b.Last()
		return b.Node("Slice", []string{x, b.IntConstant(-1), b.IntConstant(math.MinInt64), b.IntConstant(1), b.IntConstant(-2)})
	}},
	"Gather indices": {body: func(b *onnxtest.Builder) string {
		return b.Node("Gather", []string{b.Last(), b.Ints("idx", 3, 0, -1)}, onnxtest.AttrInt("axis", 1))
	}},
	"Gather scalar index": {body: func(b *onnxtest.Builder) string {
		x := b.Last()
		return b.Node("Gather", []string{x, b.IntScalar(2)}, onnxtest.AttrInt("axis", 2))
	}},
	"Shape Gather Unsqueeze Concat Reshape": {body: func(b *onnxtest.Builder) string {
		x := b.Last()
		shape := b.Node("Shape", []string{x})
		batch := b.Node("Gather", []string{shape, b.IntScalar(0)}, onnxtest.AttrInt("axis", 0))
		batch = b.Node("Unsqueeze", []string{batch, b.IntConstant(0)})
		channels := b.Node("Gather", []string{shape, b.IntConstant(1)}, onnxtest.AttrInt("axis", 0))
		half := b.Node("Div", []string{b.Node("Add", []string{channels, b.IntConstant(1)}), b.IntConstant(2)})
		target := b.Node("Concat", []string{batch, b.IntConstant(2), half, b.IntConstant(-1)}, onnxtest.AttrInt("axis", 0))
		y := b.Node("Reshape", []string{x, target})
		y = b.Node("Transpose", []string{y}, onnxtest.AttrInts("perm", 0, 2, 1, 3))
		return b.Node("Mul", []string{y, b.Node("Cast", []string{half}, onnxtest.AttrInt("to", int64(onnx.DataTypeFloat)))})
	}},
	"Squeeze Unsqueeze attributes (opset 11)": {opset: 11, body: func(b *onnxtest.Builder) string {
		y := b.Node("Unsqueeze", []string{b.Last()}, onnxtest.AttrInts("axes", 2, -1))
		return b.Node("Squeeze", []string{b.Node("Sigmoid", []string{y})}, onnxtest.AttrInts("axes", 2))
	}},
	"Squeeze Unsqueeze inputs (opset 13)": {body: func(b *onnxtest.Builder) string {
		y := b.Node("Unsqueeze", []string{b.Last(), b.IntConstant(1)})
		return b.Node("Squeeze", []string{b.Node("Sigmoid", []string{y}), b.IntConstant(1)})
	}},
	"ReduceMean keepdims 0": {body: func(b *onnxtest.Builder) string {
		return b.Node("ReduceMean", []string{b.Last()}, onnxtest.AttrInts("axes", 2, 3), onnxtest.AttrInt("keepdims", 0))
	}},
	"ReduceMean keepdims 1 negative axis": {body: func(b *onnxtest.Builder) string {
		return b.Node("ReduceMean", []string{b.Last()}, onnxtest.AttrInts("axes", -3))
	}},
	"ReduceSum axes input (opset 13)": {body: func(b *onnxtest.Builder) string {
		return b.Node("ReduceSum", []string{b.Last(), b.IntConstant(1, 3)})
	}},
	"Split attribute (opset 11)": {opset: 11, body: func(b *onnxtest.Builder) string {
		split := b.Node("Split", []string{b.Last()}, onnxtest.AttrInt("axis", 1), onnxtest.AttrInts("split", 1, 3))
		return splitTwo(b, split)
	}},
	"Split input (opset 13)": {body: func(b *onnxtest.Builder) string {
		split := b.Node("Split", []string{b.Last(), b.IntConstant(4, 2)}, onnxtest.AttrInt("axis", -1))
		return splitTwo(b, split)
	}},
	"Split equal parts": {body: func(b *onnxtest.Builder) string {
		split := b.Node("Split", []string{b.Last()}, onnxtest.AttrInt("axis", 2))
		return splitTwo(b, split)
	}},
	"Softmax coerced to 2-D (opset 11)": {opset: 11, body: func(b *onnxtest.Builder) string {
		return b.Node("Softmax", []string{b.Last()}, onnxtest.AttrInt("axis", 2))
	}},
	"Softmax one axis (opset 13)": {body: func(b *onnxtest.Builder) string {
		return b.Node("Softmax", []string{b.Last()}, onnxtest.AttrInt("axis", 1))
	}},
	"LogSoftmax default axis (opset 13)": {body: func(b *onnxtest.Builder) string {
		return b.Node("LogSoftmax", []string{b.Last()})
	}},
	"LogSoftmax default axis (opset 11)": {opset: 11, body: func(b *onnxtest.Builder) string {
		return b.Node("LogSoftmax", []string{b.Last()})
	}},
}

// splitTwo gives the two outputs of the Split node just added distinct names and
// joins them again, scaled differently, so both carry gradient.
func splitTwo(b *onnxtest.Builder, split string) string {
	m := b.Model()
	node := &m.Graph.Nodes[len(m.Graph.Nodes)-1]
	node.Outputs = []string{split, split + "_second"}
	first := b.Node("Sigmoid", []string{split})
	second := b.Node("Tanh", []string{split + "_second"})
	return b.Node("Concat", []string{b.Node("Flatten", []string{first}), b.Node("Flatten", []string{second})}, onnxtest.AttrInt("axis", 1))
}

// TestOpGradients checks the input and weight gradients of every op form against
// central finite differences, with kinks (Clip, pools, HardSwish) found by one-sided
// differences.
func TestOpGradients(t *testing.T) {
	r := rand.New(rand.NewPCG(61, 62))
	for _, name := range slices.Sorted(maps.Keys(opCases)) {
		t.Run(name, func(t *testing.T) { checkOpCase(t, opCases[name], r) })
	}
}

// checkOpCase checks one op case at batch 2 on normal random inputs.
func checkOpCase(t *testing.T, c opCase, r *rand.Rand) {
	m := c.model(t, r.Uint64())
	const batch = 2
	dims := c.dims
	if dims == nil {
		dims = []int64{4, 6, 6}
	}
	size := 1
	for _, d := range dims {
		size *= int(d)
	}
	inputs := make([]float64, batch*size)
	for i := range inputs {
		inputs[i] = r.NormFloat64()
	}
	checkGradients(t, gradCase{model: m, inputs: inputs, batch: batch, scale: 1, hInput: 1e-5, hParam: 1e-5, slopes: true}, r)
}
