package onnx_test

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/fragile-operator/fragile-operator/internal/zoo"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

var (
	mnistOnce  sync.Once
	mnistBytes []byte
	mnistErr   error
)

// mnist7 returns the zoo model's bytes; callers must not modify them.
func mnist7(tb testing.TB) []byte {
	tb.Helper()
	mnistOnce.Do(func() { mnistBytes, mnistErr = zoo.MNIST7() })
	if mnistErr != nil {
		tb.Fatalf("extracting mnist-7: %v", mnistErr)
	}
	return mnistBytes
}

// modelOpts compares decoded models: nil and empty slices are the same thing to a
// protobuf decoder, and NaN weights equal themselves.
var modelOpts = cmp.Options{cmpopts.EquateEmpty(), cmpopts.EquateNaNs()}

// TestDecodeMNIST7 checks the decoded zoo model against the architecture the ONNX
// model zoo documents for mnist-7 (opset 7; Reshape, Conv 5x5 SAME_UPPER, Add, Relu,
// MaxPool, MatMul; input Input3 1x1x28x28; output Plus214_Output_0 1x10, batch fixed
// by a Reshape to 1x256).
func TestDecodeMNIST7(t *testing.T) {
	m, err := onnx.Decode(mnist7(t))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if got := m.Opsets[""]; got != 7 {
		t.Errorf("default-domain opset = %d, want 7", got)
	}

	ops := map[string]int{}
	for _, n := range m.Graph.Nodes {
		ops[n.OpType]++
	}
	// Two conv blocks (Conv, Add, Relu, MaxPool), the classifier (MatMul, Add) and
	// two Reshapes (the pooled features to 1x256, the 4-D weight to 256x10).
	wantOps := map[string]int{"Conv": 2, "Add": 3, "Relu": 2, "MaxPool": 2, "MatMul": 1, "Reshape": 2}
	if diff := cmp.Diff(wantOps, ops); diff != "" {
		t.Errorf("op counts (-want +got):\n%s", diff)
	}

	init := map[string]*onnx.Tensor{}
	for i := range m.Graph.Initializers {
		tensor := &m.Graph.Initializers[i]
		init[tensor.Name] = tensor
		switch tensor.DataType {
		case onnx.DataTypeFloat:
			if int64(len(tensor.Float)) != tensor.Size() {
				t.Errorf("initializer %s: %d values for dims %v", tensor.Name, len(tensor.Float), tensor.Dims)
			}
		case onnx.DataTypeInt64:
			if int64(len(tensor.Int64)) != tensor.Size() {
				t.Errorf("initializer %s: %d values for dims %v", tensor.Name, len(tensor.Int64), tensor.Dims)
			}
		default:
			t.Errorf("initializer %s has type %s, mnist-7 has only FLOAT and INT64", tensor.Name, tensor.DataType)
		}
	}

	var convs []*onnx.Node
	for i := range m.Graph.Nodes {
		n := &m.Graph.Nodes[i]
		switch n.OpType {
		case "Conv":
			convs = append(convs, n)
			if a := n.Attr("kernel_shape"); a == nil || !slices.Equal(a.Ints, []int64{5, 5}) {
				t.Errorf("%s: kernel_shape %v, want [5 5]", n.Name, a)
			}
			if a := n.Attr("auto_pad"); a == nil || string(a.S) != "SAME_UPPER" {
				t.Errorf("%s: auto_pad %v, want SAME_UPPER", n.Name, a)
			}
		case "Reshape":
			shape := init[n.Inputs[1]]
			if shape == nil || shape.DataType != onnx.DataTypeInt64 {
				t.Fatalf("%s: shape input %s is not an INT64 initializer", n.Name, n.Inputs[1])
			}
			if !slices.Equal(shape.Int64, []int64{1, 256}) && !slices.Equal(shape.Int64, []int64{256, 10}) {
				t.Errorf("%s: target shape %v, want [1 256] or [256 10]", n.Name, shape.Int64)
			}
		}
	}
	if len(convs) != 2 {
		t.Fatalf("%d Conv nodes", len(convs))
	}
	// The first conv reads the 1-channel image; the second reads the first's
	// channels; 16 output channels of 4x4 after the two poolings (28 -> 14 -> 4) make
	// the 256 features of the Reshape.
	w1, w2 := init[convs[0].Inputs[1]], init[convs[1].Inputs[1]]
	if w1 == nil || w2 == nil {
		t.Fatal("conv weights are not initializers")
	}
	if len(w1.Dims) != 4 || w1.Dims[1] != 1 || w1.Dims[2] != 5 || w1.Dims[3] != 5 {
		t.Errorf("first conv weight dims %v, want (C1, 1, 5, 5)", w1.Dims)
	}
	if len(w2.Dims) != 4 || w2.Dims[0] != 16 || w2.Dims[1] != w1.Dims[0] || w2.Dims[2] != 5 || w2.Dims[3] != 5 {
		t.Errorf("second conv weight dims %v, want (16, %d, 5, 5)", w2.Dims, w1.Dims[0])
	}

	var input *onnx.ValueInfo
	for i := range m.Graph.Inputs {
		if init[m.Graph.Inputs[i].Name] == nil {
			if input != nil {
				t.Fatalf("two non-initializer inputs: %s and %s", input.Name, m.Graph.Inputs[i].Name)
			}
			input = &m.Graph.Inputs[i]
		}
	}
	if input == nil || input.Name != "Input3" || input.ShapeString() != "1x1x28x28" || input.ElemType != onnx.DataTypeFloat {
		t.Errorf("input = %+v, want Input3 FLOAT 1x1x28x28", input)
	}
	if len(m.Graph.Outputs) != 1 || m.Graph.Outputs[0].Name != "Plus214_Output_0" || m.Graph.Outputs[0].ShapeString() != "1x10" {
		t.Errorf("outputs = %+v, want Plus214_Output_0 1x10", m.Graph.Outputs)
	}
	if got := m.Graph.Nodes[len(m.Graph.Nodes)-1].Outputs[0]; got != "Plus214_Output_0" {
		t.Errorf("last node produces %s, want the graph output", got)
	}
}

// TestDecodeTestData decodes the zoo's reference tensors: one 28x28 image with
// pixels in 0..255 and one row of 10 logits each.
func TestDecodeTestData(t *testing.T) {
	for i := 0; i < 3; i++ {
		in, out, err := zoo.MNIST7TestData(i)
		if err != nil {
			t.Fatal(err)
		}
		x, err := onnx.DecodeTensor(in)
		if err != nil {
			t.Fatalf("set %d input: %v", i, err)
		}
		if !slices.Equal(x.Dims, []int64{1, 1, 28, 28}) || len(x.Float) != 784 {
			t.Errorf("set %d input: dims %v with %d values", i, x.Dims, len(x.Float))
		}
		if lo, hi := slices.Min(x.Float), slices.Max(x.Float); lo < 0 || hi > 255 || hi <= lo {
			t.Errorf("set %d input: pixels in [%g, %g], want a non-constant image in 0..255", i, lo, hi)
		}
		y, err := onnx.DecodeTensor(out)
		if err != nil {
			t.Fatalf("set %d output: %v", i, err)
		}
		if !slices.Equal(y.Dims, []int64{1, 10}) || len(y.Float) != 10 {
			t.Errorf("set %d output: dims %v with %d values", i, y.Dims, len(y.Float))
		}
	}
}

// richModel uses every feature the codec claims to carry: all attribute kinds, every
// element type with values, symbolic and unknown dims, several opset domains and
// float values whose bits a lossy codec would change.
func richModel() *onnx.Model {
	return &onnx.Model{
		IRVersion:       8,
		ProducerName:    "onnx_test",
		ProducerVersion: "0.1",
		Opsets:          map[string]int64{"": 13, "com.example": 2},
		Graph: onnx.Graph{
			Name: "rich",
			Nodes: []onnx.Node{
				{
					Name: "conv", OpType: "Conv", Inputs: []string{"x", "w", ""}, Outputs: []string{"y"},
					Attributes: []onnx.Attribute{
						{Name: "kernel_shape", Type: onnx.AttributeInts, Ints: []int64{3, 3}},
						{Name: "pads", Type: onnx.AttributeInts, Ints: []int64{-1, 0, 1 << 40, 2}},
						{Name: "group", Type: onnx.AttributeInt, I: -7},
						{Name: "alpha", Type: onnx.AttributeFloat, F: 0.125},
						{Name: "auto_pad", Type: onnx.AttributeString, S: []byte("SAME_LOWER")},
						{Name: "scales", Type: onnx.AttributeFloats, Floats: []float32{1.5, -2, float32(math.Inf(1))}},
						{Name: "names", Type: onnx.AttributeStrings, Strings: [][]byte{[]byte("a"), {}, []byte("c\x00d")}},
						{Name: "value", Type: onnx.AttributeTensor, T: &onnx.Tensor{
							Name: "v", Dims: []int64{2}, DataType: onnx.DataTypeInt64, Int64: []int64{-1, 1 << 62},
						}},
					},
				},
				{OpType: "Custom", Domain: "com.example", Inputs: []string{"y"}, Outputs: []string{"z", "aux"}},
			},
			Initializers: []onnx.Tensor{
				{Name: "w", Dims: []int64{2, 3}, DataType: onnx.DataTypeFloat, Float: []float32{
					0, float32(math.Copysign(0, -1)), math.MaxFloat32, math.SmallestNonzeroFloat32, float32(math.NaN()), -3.25,
				}},
				{Name: "scalar", DataType: onnx.DataTypeFloat, Float: []float32{42}},
				{Name: "empty", Dims: []int64{0, 4}, DataType: onnx.DataTypeFloat},
				{Name: "d", Dims: []int64{3}, DataType: onnx.DataTypeDouble, Double: []float64{math.Pi, -0.5, 1e300}},
				{Name: "i64", Dims: []int64{2, 2}, DataType: onnx.DataTypeInt64, Int64: []int64{math.MinInt64, -1, 0, math.MaxInt64}},
				{Name: "i32", Dims: []int64{3}, DataType: onnx.DataTypeInt32, Int64: []int64{math.MinInt32, -1, math.MaxInt32}},
			},
			Inputs: []onnx.ValueInfo{
				{Name: "x", ElemType: onnx.DataTypeFloat, Dims: []onnx.Dim{{Value: -1, Param: "batch"}, {Value: 3}, {Value: -1}, {Value: 0}}},
			},
			Outputs: []onnx.ValueInfo{
				{Name: "z", ElemType: onnx.DataTypeDouble, Dims: []onnx.Dim{{Value: 1}, {Value: 10}}},
			},
		},
	}
}

func floatBits(v []float32) []uint32 {
	out := make([]uint32, len(v))
	for i, f := range v {
		out[i] = math.Float32bits(f)
	}
	return out
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	want := richModel()
	got, err := onnx.Decode(onnx.Encode(want))
	if err != nil {
		t.Fatalf("Decode(Encode(m)): %v", err)
	}
	if diff := cmp.Diff(want, got, modelOpts); diff != "" {
		t.Errorf("round trip changed the model (-want +got):\n%s", diff)
	}
	// cmp treats -0 as 0; a codec must keep the bits.
	if w, g := floatBits(want.Graph.Initializers[0].Float), floatBits(got.Graph.Initializers[0].Float); !slices.Equal(w, g) {
		t.Errorf("float bits %x, want %x", g, w)
	}
	// Encoding is deterministic (opsets come from a map).
	for i := 0; i < 5; i++ {
		if !bytes.Equal(onnx.Encode(want), onnx.Encode(want)) {
			t.Fatal("two encodings of one model differ")
		}
	}
}

// TestReencodeMNIST7 re-serialises the zoo model: the decoded models must be equal,
// so Encode loses nothing a classifier needs from a real exporter's file.
func TestReencodeMNIST7(t *testing.T) {
	want, err := onnx.Decode(mnist7(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := onnx.Decode(onnx.Encode(want))
	if err != nil {
		t.Fatalf("Decode(Encode(mnist-7)): %v", err)
	}
	if diff := cmp.Diff(want, got, modelOpts); diff != "" {
		t.Errorf("re-encoding changed mnist-7 (-want +got):\n%s", diff)
	}
}

func TestReplaceInitializers(t *testing.T) {
	data := mnist7(t)
	before := bytes.Clone(data)
	orig, err := onnx.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	values := map[string][]float32{}
	for _, name := range []string{"Parameter5", "Parameter194"} {
		n := orig.Graph.Initializer(name).Size()
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(i)*0.5 - 3
		}
		values[name] = v
	}
	out, err := onnx.ReplaceInitializers(data, values)
	if err != nil {
		t.Fatalf("ReplaceInitializers: %v", err)
	}
	if !bytes.Equal(data, before) {
		t.Fatal("ReplaceInitializers modified its input")
	}
	got, err := onnx.Decode(out)
	if err != nil {
		t.Fatalf("decoding the rewritten file: %v", err)
	}
	if len(got.Graph.Initializers) != len(orig.Graph.Initializers) {
		t.Fatalf("%d initializers, want %d", len(got.Graph.Initializers), len(orig.Graph.Initializers))
	}
	for i, g := range got.Graph.Initializers {
		o := orig.Graph.Initializers[i]
		if v, ok := values[o.Name]; ok {
			if g.Name != o.Name || !slices.Equal(g.Dims, o.Dims) || g.DataType != o.DataType {
				t.Errorf("replaced initializer %s: header changed to %s %v %s", o.Name, g.Name, g.Dims, g.DataType)
			}
			if !slices.Equal(g.Float, v) {
				t.Errorf("initializer %s does not carry the new values", o.Name)
			}
			continue
		}
		if diff := cmp.Diff(o, g, modelOpts); diff != "" {
			t.Errorf("untouched initializer %s changed (-want +got):\n%s", o.Name, diff)
		}
	}
	// Everything but the initializers is the same graph.
	o2, g2 := *orig, *got
	o2.Graph.Initializers, g2.Graph.Initializers = nil, nil
	if diff := cmp.Diff(&o2, &g2, modelOpts); diff != "" {
		t.Errorf("model outside the initializers changed (-want +got):\n%s", diff)
	}

	// Replacing nothing copies every byte.
	same, err := onnx.ReplaceInitializers(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(same, data) {
		t.Error("ReplaceInitializers with no values changed the file")
	}
}

// TestReplaceInitializersKeepsOtherBytes appends fields the codec does not model (a
// doc_string on the model and an unknown field in the graph): a weight rewrite must
// carry them over.
func TestReplaceInitializersKeepsOtherBytes(t *testing.T) {
	m := richModel()
	data := onnx.Encode(m)
	data = protowire.AppendTag(data, 6, protowire.BytesType) // ModelProto.doc_string
	data = protowire.AppendString(data, "model doc: keep me")
	data = protowire.AppendTag(data, 99, protowire.VarintType) // unknown field
	data = protowire.AppendVarint(data, 12345)

	out, err := onnx.ReplaceInitializers(data, map[string][]float32{"w": {1, 2, 3, 4, 5, 6}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte("model doc: keep me")) {
		t.Error("doc_string lost")
	}
	tail := protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 12345)
	if !bytes.HasSuffix(out, tail) {
		t.Error("unknown trailing field lost")
	}
	got, err := onnx.Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	if w := got.Graph.Initializer("w"); w == nil || !slices.Equal(w.Float, []float32{1, 2, 3, 4, 5, 6}) {
		t.Errorf("w = %v", w)
	}
}

func TestReplaceInitializersErrors(t *testing.T) {
	data := mnist7(t)
	tests := map[string]struct {
		values map[string][]float32
		want   string
	}{
		"unknown name":      {map[string][]float32{"NoSuchWeight": {1}}, "NoSuchWeight"},
		"too few values":    {map[string][]float32{"Parameter194": make([]float32, 9)}, "Parameter194"},
		"too many values":   {map[string][]float32{"Parameter5": make([]float32, 201)}, "Parameter5"},
		"INT64 initializer": {map[string][]float32{"Pooling160_Output_0_reshape0_shape": {1, 256}}, "INT64"},
		"one good one bad": {map[string][]float32{
			"Parameter194": make([]float32, 10), "Missing": {1},
		}, "Missing"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, err := onnx.ReplaceInitializers(data, tc.values)
			if err == nil {
				t.Fatalf("no error (got %d bytes)", len(out))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	if _, err := onnx.ReplaceInitializers(data[:len(data)/2], nil); err == nil {
		t.Error("a truncated file was rewritten without error")
	}
}

// ---- malformed input ------------------------------------------------------------

// tensorMsg encodes a TensorProto by hand, so tests can write what Encode never would.
type tensorMsg struct {
	name     string
	dims     []int64
	dataType onnx.DataType
	raw      []byte // raw_data, written when non-nil
	floats   []float32
	external bool
}

func (m tensorMsg) bytes() []byte {
	var b []byte
	for _, d := range m.dims {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(d))
	}
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(m.dataType))
	if len(m.floats) > 0 { // packed float_data
		var packed []byte
		for _, f := range m.floats {
			packed = protowire.AppendFixed32(packed, math.Float32bits(f))
		}
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendBytes(b, packed)
	}
	b = protowire.AppendTag(b, 8, protowire.BytesType)
	b = protowire.AppendString(b, m.name)
	if m.raw != nil {
		b = protowire.AppendTag(b, 9, protowire.BytesType)
		b = protowire.AppendBytes(b, m.raw)
	}
	if m.external {
		b = protowire.AppendTag(b, 14, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	return b
}

// withInitializer is a valid one-node model whose graph also carries the given
// TensorProto bytes as an initializer.
func withInitializer(tensor []byte) []byte {
	m := &onnx.Model{IRVersion: 7, Graph: onnx.Graph{Nodes: []onnx.Node{{OpType: "Relu", Inputs: []string{"x"}, Outputs: []string{"y"}}}}}
	out := onnx.Encode(m)
	// Rebuild field 7 with the extra initializer appended to the graph.
	var graph []byte
	for len(out) > 0 {
		num, typ, n := protowire.ConsumeTag(out)
		l := protowire.ConsumeFieldValue(num, typ, out[n:])
		if num == 7 {
			graph, _ = protowire.ConsumeBytes(out[n:])
		}
		out = out[n+l:]
	}
	graph = protowire.AppendTag(bytes.Clone(graph), 5, protowire.BytesType)
	graph = protowire.AppendBytes(graph, tensor)
	b := protowire.AppendTag(nil, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, 7)
	b = protowire.AppendTag(b, 7, protowire.BytesType)
	return protowire.AppendBytes(b, graph)
}

func le32(v ...float32) []byte {
	var b []byte
	for _, f := range v {
		b = protowire.AppendFixed32(b, math.Float32bits(f))
	}
	return b
}

func TestDecodeMalformedTensors(t *testing.T) {
	tests := map[string]struct {
		tensor tensorMsg
		want   string // part of the error message
	}{
		"negative dim": {
			tensorMsg{name: "neg", dims: []int64{-2, 3}, dataType: onnx.DataTypeFloat, raw: le32(1, 2, 3, 4, 5, 6)},
			"negative dimension",
		},
		"raw data shorter than dims": {
			tensorMsg{name: "short", dims: []int64{2, 3}, dataType: onnx.DataTypeFloat, raw: le32(1, 2, 3, 4, 5)},
			"short",
		},
		"raw data longer than dims": {
			tensorMsg{name: "long", dims: []int64{2}, dataType: onnx.DataTypeFloat, raw: le32(1, 2, 3)},
			"long",
		},
		"raw data not a whole number of floats": {
			tensorMsg{name: "ragged", dims: []int64{1}, dataType: onnx.DataTypeFloat, raw: []byte{1, 2, 3}},
			"ragged",
		},
		"float_data count mismatch": {
			tensorMsg{name: "fd", dims: []int64{4}, dataType: onnx.DataTypeFloat, floats: []float32{1, 2, 3}},
			"need 4 values",
		},
		"external data": {
			tensorMsg{name: "ext", dims: []int64{2}, dataType: onnx.DataTypeFloat, external: true},
			"external data",
		},
		"too many elements": {
			tensorMsg{name: "huge", dims: []int64{1 << 20, 1 << 20}, dataType: onnx.DataTypeFloat},
			"elements",
		},
		"too many dims": {
			tensorMsg{name: "deep", dims: make([]int64, 17), dataType: onnx.DataTypeFloat},
			"dims",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			msg := tc.tensor.bytes()
			if tensor, err := onnx.DecodeTensor(msg); err == nil {
				t.Errorf("DecodeTensor: no error, got %+v", tensor)
			} else if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("DecodeTensor error %q does not mention %q", err, tc.want)
			}
			m, err := onnx.Decode(withInitializer(msg))
			if err == nil {
				t.Fatalf("Decode: no error, got %+v", m.Graph.Initializers)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Decode error %q does not mention %q", err, tc.want)
			}
			if !errors.Is(err, onnx.ErrNotONNX) {
				t.Errorf("Decode error %q does not wrap ErrNotONNX", err)
			}
		})
	}
	// The control: the same helper with a good tensor decodes.
	good := tensorMsg{name: "ok", dims: []int64{2, 3}, dataType: onnx.DataTypeFloat, raw: le32(1, 2, 3, 4, 5, 6)}
	m, err := onnx.Decode(withInitializer(good.bytes()))
	if err != nil {
		t.Fatalf("control model: %v", err)
	}
	if w := m.Graph.Initializer("ok"); w == nil || !slices.Equal(w.Float, []float32{1, 2, 3, 4, 5, 6}) {
		t.Errorf("control initializer = %+v", w)
	}
	packed := tensorMsg{name: "fd", dims: []int64{3}, dataType: onnx.DataTypeFloat, floats: []float32{1, 2, 3}}
	if tensor, err := onnx.DecodeTensor(packed.bytes()); err != nil || !slices.Equal(tensor.Float, []float32{1, 2, 3}) {
		t.Errorf("packed float_data control: %v, %+v", err, tensor)
	}
}

func TestDecodeMalformedFiles(t *testing.T) {
	data := mnist7(t)
	graphVarint := protowire.AppendVarint(protowire.AppendTag(nil, 7, protowire.VarintType), 3)
	tests := map[string][]byte{
		"empty":                 nil,
		"one byte":              {0x08},
		"text":                  []byte("this is not a protobuf message at all, it is a sentence."),
		"graph with wrong type": graphVarint,
		"no graph":              protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 7),
		"length past the end":   {0x3a, 0xff, 0xff, 0xff, 0x0f, 0x01},
		"truncated to 10 bytes": data[:10],
		"truncated to 1/3":      data[:len(data)/3],
		"truncated to 1/2":      data[:len(data)/2],
		"truncated by one byte": data[:len(data)-1],
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			m, err := onnx.Decode(in)
			if err == nil {
				t.Fatalf("no error; decoded %d nodes", len(m.Graph.Nodes))
			}
			if m != nil {
				t.Error("a model was returned with the error")
			}
			if !errors.Is(err, onnx.ErrNotONNX) {
				t.Errorf("error %q does not wrap ErrNotONNX", err)
			}
		})
	}
}

// FuzzDecode feeds arbitrary bytes to the decoder. It must never panic, and whatever
// it accepts must be self-consistent: every tensor holds exactly the values its dims
// describe, the model survives Encode, and a no-op weight rewrite decodes to the same
// model.
func FuzzDecode(f *testing.F) {
	data := mnist7(f)
	f.Add(data)
	for _, n := range []int{0, 1, 17, 100, len(data) / 2, len(data) - 300, len(data) - 1} {
		f.Add(data[:n])
	}
	f.Add(onnx.Encode(richModel()))
	f.Add(withInitializer(tensorMsg{name: "t", dims: []int64{2}, dataType: onnx.DataTypeFloat, floats: []float32{1, 2}}.bytes()))

	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := onnx.Decode(data)
		_, _ = onnx.DecodeTensor(data)
		_, _ = onnx.ReplaceInitializers(data, map[string][]float32{"Parameter5": make([]float32, 200)})
		if err != nil {
			if m != nil {
				t.Fatal("model and error both returned")
			}
			return
		}
		if len(m.Graph.Nodes) == 0 {
			t.Fatal("accepted a graph without nodes")
		}
		for _, tensor := range m.Graph.Initializers {
			var have int
			switch tensor.DataType {
			case onnx.DataTypeFloat:
				have = len(tensor.Float)
			case onnx.DataTypeDouble:
				have = len(tensor.Double)
			case onnx.DataTypeInt64, onnx.DataTypeInt32:
				have = len(tensor.Int64)
			default:
				continue
			}
			if int64(have) != tensor.Size() {
				t.Fatalf("initializer %q: %d values for dims %v", tensor.Name, have, tensor.Dims)
			}
			for _, d := range tensor.Dims {
				if d < 0 {
					t.Fatalf("initializer %q has dims %v", tensor.Name, tensor.Dims)
				}
			}
		}
		encoded := onnx.Encode(m)
		if _, err := onnx.Decode(encoded); err != nil {
			t.Fatalf("Decode(Encode(m)): %v", err)
		}
		same, err := onnx.ReplaceInitializers(data, nil)
		if err != nil {
			t.Fatalf("Decode accepted the file, ReplaceInitializers did not: %v", err)
		}
		m2, err := onnx.Decode(same)
		if err != nil {
			t.Fatalf("decoding a no-op rewrite: %v", err)
		}
		// Encode is deterministic and keeps every value's bits, so equal encodings
		// mean equal models (and this is much cheaper than a reflective diff).
		if !bytes.Equal(onnx.Encode(m2), encoded) {
			t.Fatal("a no-op rewrite changed the decoded model")
		}
	})
}

// TestBuilderConstants checks the Constant nodes the Builder writes (the forms
// torch.onnx.export uses for shapes, indices and scalar bounds) survive encoding.
func TestBuilderConstants(t *testing.T) {
	b := onnx.NewBuilder(nil, "test", "x", -1, 4)
	lo := b.FloatConstant(nil, -0.5)
	axes := b.IntConstant(0, math.MaxInt64)
	index := b.IntScalar(-1)
	b.Node("Clip", []string{"x", lo})
	m, err := onnx.Decode(onnx.Encode(b.Model(-1, 4)))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]onnx.Tensor{
		lo:    {DataType: onnx.DataTypeFloat, Float: []float32{-0.5}},
		axes:  {Dims: []int64{2}, DataType: onnx.DataTypeInt64, Int64: []int64{0, math.MaxInt64}},
		index: {DataType: onnx.DataTypeInt64, Int64: []int64{-1}},
	}
	for _, n := range m.Graph.Nodes[:3] {
		a := n.Attr("value")
		if n.OpType != "Constant" || a == nil || a.T == nil {
			t.Fatalf("node %s: %s without a tensor value", n.Label(), n.OpType)
		}
		if diff := cmp.Diff(want[n.Outputs[0]], *a.T, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("constant %s (-want +got):\n%s", n.Outputs[0], diff)
		}
	}
}
