package conformance

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// writeCase writes a backend-suite case of one node into a new directory, the
// graph inputs and outputs typed and shaped as the given tensors.
func writeCase(t *testing.T, node onnx.Node, inputs, outputs []onnx.Tensor) *Case {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "test_case")
	if err := os.MkdirAll(filepath.Join(dir, "test_data_set_0"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := &onnx.Model{IRVersion: 8, Opsets: map[string]int64{"": 17}, Graph: onnx.Graph{Name: "case", Nodes: []onnx.Node{node}}}
	valueInfo := func(t onnx.Tensor) onnx.ValueInfo {
		vi := onnx.ValueInfo{Name: t.Name, ElemType: t.DataType}
		for _, d := range t.Dims {
			vi.Dims = append(vi.Dims, onnx.Dim{Value: d})
		}
		return vi
	}
	write := func(prefix string, ts []onnx.Tensor, infos *[]onnx.ValueInfo) {
		for i, tensor := range ts {
			*infos = append(*infos, valueInfo(tensor))
			path := filepath.Join(dir, "test_data_set_0", prefix+"_"+string(rune('0'+i))+".pb")
			if err := os.WriteFile(path, onnx.EncodeTensor(&tensor), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("input", inputs, &m.Graph.Inputs)
	write("output", outputs, &m.Graph.Outputs)
	if err := os.WriteFile(filepath.Join(dir, "model.onnx"), onnx.Encode(m), 0o644); err != nil {
		t.Fatal(err)
	}
	cases, err := Discover(filepath.Dir(filepath.Dir(dir)), filepath.Base(filepath.Dir(dir)))
	if err != nil {
		t.Fatal(err)
	}
	return cases[0]
}

func floats(name string, values []float32, dims ...int64) onnx.Tensor {
	return onnx.Tensor{Name: name, Dims: dims, DataType: onnx.DataTypeFloat, Float: values}
}

func TestRunCase(t *testing.T) {
	// MatMul of a fed (1,2) input with a (2,1) weight given as a graph input, as
	// node cases give weights: the weight is folded into an initializer, and the
	// single-valued output goes through the widening Add.
	matmul := onnx.Node{Name: "mm", OpType: "MatMul", Inputs: []string{"a", "b"}, Outputs: []string{"y"}}
	a := floats("a", []float32{1, 2}, 1, 2)
	b := floats("b", []float32{3, -4}, 2, 1)
	// Relu on a (2,3) input: the output's batch-like first axis is not the batch.
	relu := onnx.Node{Name: "r", OpType: "Relu", Inputs: []string{"x"}, Outputs: []string{"y"}}
	x := floats("x", []float32{-1, 2, -3, 4, 0, 6}, 2, 3)
	for _, tc := range []struct {
		name    string
		c       *Case
		outcome Outcome
		message string
	}{
		{"matmul right", writeCase(t, matmul, []onnx.Tensor{a, b}, []onnx.Tensor{floats("y", []float32{-5}, 1, 1)}), Passed, ""},
		{"matmul wrong", writeCase(t, matmul, []onnx.Tensor{a, b}, []onnx.Tensor{floats("y", []float32{-5.01}, 1, 1)}), Failed, "1 of 1 values outside"},
		{"relu right", writeCase(t, relu, []onnx.Tensor{x}, []onnx.Tensor{floats("y", []float32{0, 2, 0, 4, 0, 6}, 2, 3)}), Passed, ""},
		{"relu wrong size", writeCase(t, relu, []onnx.Tensor{x}, []onnx.Tensor{floats("y", []float32{0, 2, 0, 4, 0}, 5)}), Failed, "6 values computed, 5 expected"},
		{"unknown op", writeCase(t, onnx.Node{Name: "l", OpType: "LSTM", Inputs: []string{"x"}, Outputs: []string{"y"}},
			[]onnx.Tensor{x}, []onnx.Tensor{floats("y", []float32{0, 2, 0, 4, 0, 6}, 2, 3)}), Refused, "op LSTM is not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := RunCase(tc.c)
			if r.Outcome != tc.outcome || !strings.Contains(r.Message, tc.message) {
				t.Errorf("got %s %q, want %s containing %q", r.Outcome, r.Message, tc.outcome, tc.message)
			}
		})
	}
}

func TestUnclaimedTypes(t *testing.T) {
	add := onnx.Node{Name: "add", OpType: "Add", Inputs: []string{"x", "y"}, Outputs: []string{"z"}}
	ints := onnx.Tensor{Name: "x", Dims: []int64{2}, DataType: onnx.DataTypeInt64, Int64: []int64{1, 2}}
	c := writeCase(t, add, []onnx.Tensor{ints, floats("y", []float32{1, 2}, 2)},
		[]onnx.Tensor{{Name: "z", Dims: []int64{2}, DataType: onnx.DataTypeInt64, Int64: []int64{2, 4}}})
	if got, want := c.UnclaimedTypes(), "output z is INT64"; got != want {
		t.Errorf("UnclaimedTypes = %q, want %q (INT64 inputs are parameters, INT64 outputs are not claimed)", got, want)
	}
}

func TestCompare(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		got, want []float64
		ok        bool
	}{
		{[]float64{1, 100}, []float64{1 + 0.9e-5, 100 + 0.0099}, true},
		{[]float64{1}, []float64{1 + 2.1e-4}, false},
		{[]float64{0}, []float64{0.9e-5}, true},
		{[]float64{0}, []float64{1.1e-5}, false},
		{[]float64{nan}, []float64{nan}, true},
		{[]float64{1}, []float64{nan}, false},
		{[]float64{1, 2}, []float64{1}, false},
	} {
		if err := Compare(tc.got, tc.want); (err == nil) != tc.ok {
			t.Errorf("Compare(%v, %v) = %v, want ok %v", tc.got, tc.want, err, tc.ok)
		}
	}
}

func TestWriteReport(t *testing.T) {
	relu := &Case{Suite: "node", Name: "test_relu", Ops: []string{"Relu"}}
	conv := &Case{Suite: "node", Name: "test_conv_3d", Ops: []string{"Conv"}}
	expanded := &Case{Suite: "node", Name: "test_x_expanded", Ops: []string{"Conv", "Relu"}}
	run := &Run{
		Supported: []string{"Conv", "Relu"},
		Results: []Result{
			{Case: relu, Outcome: Passed},
			{Case: conv, Outcome: Refused, Message: "node c: op Conv: 3-D | not supported"},
			{Case: expanded, Outcome: Failed, Message: "output y: 1 of 4 values outside"},
		},
		OtherOps: []*Case{{Suite: "node", Name: "test_lstm", Ops: []string{"LSTM", "Relu"}}},
	}
	var b strings.Builder
	if err := run.WriteReport(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| **all claimed cases** | 3 | 1 | 1 | 1 | 33.3% |",
		"| Conv | 2 | 0 | 1 | 1 |",
		"| Relu | 2 | 1 | 0 | 1 |",
		"| node/test_x_expanded | Conv, Relu | output y: 1 of 4 values outside |",
		`| node/test_conv_3d | Conv | node c: op Conv: 3-D \| not supported |`,
		"## Not run: cases using ops nn does not register (1)",
		"LSTM 1.",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, b.String())
		}
	}
}
