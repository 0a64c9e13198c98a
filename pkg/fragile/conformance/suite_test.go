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
	// ReduceSum, which nn registers and infer does not: verification falls back to nn.
	sum := onnx.Node{Name: "s", OpType: "ReduceSum", Inputs: []string{"x"}, Outputs: []string{"y"}}
	for _, tc := range []struct {
		name           string
		c              *Case
		outcome, infer Outcome
		message        string
		verified       bool
	}{
		{"matmul right", writeCase(t, matmul, []onnx.Tensor{a, b}, []onnx.Tensor{floats("y", []float32{-5}, 1, 1)}), Passed, Passed, "", true},
		{"matmul wrong", writeCase(t, matmul, []onnx.Tensor{a, b}, []onnx.Tensor{floats("y", []float32{-5.01}, 1, 1)}), Failed, Failed, "1 of 1 values outside", false},
		{"relu right", writeCase(t, relu, []onnx.Tensor{x}, []onnx.Tensor{floats("y", []float32{0, 2, 0, 4, 0, 6}, 2, 3)}), Passed, Passed, "", true},
		{"relu wrong size", writeCase(t, relu, []onnx.Tensor{x}, []onnx.Tensor{floats("y", []float32{0, 2, 0, 4, 0}, 5)}), Failed, Failed, "6 values computed, 5 expected", false},
		{"unknown op", writeCase(t, onnx.Node{Name: "l", OpType: "LSTM", Inputs: []string{"x"}, Outputs: []string{"y"}},
			[]onnx.Tensor{x}, []onnx.Tensor{floats("y", []float32{0, 2, 0, 4, 0, 6}, 2, 3)}), Refused, Refused, "op LSTM is not supported", false},
		{"nn only", writeCase(t, sum, []onnx.Tensor{x}, []onnx.Tensor{floats("y", []float32{8}, 1, 1)}), Passed, Refused, "", true},
		// Opset 1: the rewrite's Reshapes take their target as an attribute.
		{"opset 1", atOpset(1, writeCase(t, relu, []onnx.Tensor{x}, []onnx.Tensor{floats("y", []float32{0, 2, 0, 4, 0, 6}, 2, 3)})), Passed, Passed, "", true},
		{"opset 1, one value", atOpset(1, writeCase(t, matmul, []onnx.Tensor{a, b}, []onnx.Tensor{floats("y", []float32{-5}, 1, 1)})), Passed, Passed, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := RunCase(tc.c)
			if r.Outcome != tc.outcome || !strings.Contains(r.Message, tc.message) {
				t.Errorf("got %s %q, want %s containing %q", r.Outcome, r.Message, tc.outcome, tc.message)
			}
			if r.Infer != tc.infer {
				t.Errorf("infer: got %s %q, want %s", r.Infer, r.InferMessage, tc.infer)
			}
			if r.VerificationPassed() != tc.verified {
				t.Errorf("verification path passed: %t, want %t", r.VerificationPassed(), tc.verified)
			}
		})
	}
}

// atOpset sets the case's opset.
func atOpset(opset int64, c *Case) *Case {
	c.model.Opsets[""] = opset
	return c
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
			{Case: relu, Outcome: Passed, Infer: Passed},
			{Case: conv, Outcome: Refused, Message: "node c: op Conv: 3-D | not supported", Infer: Refused, InferMessage: "node c: op Conv: 3-D"},
			{Case: expanded, Outcome: Failed, Message: "output y: 1 of 4 values outside", Infer: Refused, InferMessage: "node r: op Relu is not supported (supported: Add, Conv)"},
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
		"| **all claimed cases** | 3 | 1 | 2 | 0 | 1 |",
		"## Failed on infer (0)",
		"## Refused by infer (2)",
		"| node/test_x_expanded | Conv, Relu | failed | node r: op Relu is not supported |",
		"## Not run: cases using ops nn does not register (1)",
		"LSTM 1.",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, b.String())
		}
	}
}

func TestCheckPassRate(t *testing.T) {
	for _, c := range []struct {
		s    Summary
		want string // "" when the goal is met
	}{
		{Summary{Cases: 267, Passed: 254, Refused: 13}, ""},
		{Summary{Cases: 267, Passed: 253, Refused: 14}, "253 of 267 claimed cases pass (94.8%), under the 95% goal: 1 more must pass"},
		{Summary{Cases: 20, Passed: 19, Refused: 1}, ""},
		{Summary{Cases: 20, Passed: 18, Refused: 2}, "1 more must pass"},
		{Summary{Cases: 1, Passed: 1}, ""},
		{Summary{}, "no claimed case ran"},
	} {
		err := c.s.CheckPassRate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v, want the goal met", c.s, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v: %v, want an error containing %q", c.s, err, c.want)
		}
	}
}
