package conformance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/infer"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// TestdataDir is where Debian's libonnx-testdata installs the backend test suite.
const TestdataDir = "/usr/share/libonnx-testdata/data"

// Suites are the parts of the backend test suite that are run: one op per case
// (node) and small PyTorch modules exported to ONNX (pytorch-converted).
var Suites = []string{"node", "pytorch-converted"}

// Case is one case of the backend test suite: a model and its first data set.
type Case struct {
	Suite string // "node" or "pytorch-converted"
	Name  string // the directory name, e.g. "test_relu"
	Dir   string
	// Ops are the op types the graph uses, sorted; an op from a domain other than
	// ai.onnx is written "domain:op".
	Ops []string
	// DecodeErr is why model.onnx could not be decoded (Ops is then empty).
	DecodeErr error
	model     *onnx.Model
}

// Discover lists the cases of the given suites under root, in name order.
func Discover(root string, suites ...string) ([]*Case, error) {
	var cases []*Case
	for _, suite := range suites {
		dirs, err := filepath.Glob(filepath.Join(root, suite, "test_*"))
		if err != nil {
			return nil, err
		}
		if len(dirs) == 0 {
			return nil, fmt.Errorf("no cases under %s", filepath.Join(root, suite))
		}
		sort.Strings(dirs)
		for _, dir := range dirs {
			c := &Case{Suite: suite, Name: filepath.Base(dir), Dir: dir}
			data, err := os.ReadFile(filepath.Join(dir, "model.onnx"))
			if err != nil {
				return nil, err
			}
			if c.model, c.DecodeErr = onnx.Decode(data); c.DecodeErr == nil {
				c.Ops = opTypes(c.model)
			}
			cases = append(cases, c)
		}
	}
	return cases, nil
}

func opTypes(m *onnx.Model) []string {
	seen := map[string]bool{}
	var ops []string
	for _, n := range m.Graph.Nodes {
		op := n.OpType
		if n.Domain != "" && n.Domain != "ai.onnx" {
			op = n.Domain + ":" + op
		}
		if !seen[op] {
			seen[op] = true
			ops = append(ops, op)
		}
	}
	sort.Strings(ops)
	return ops
}

// Claimed reports whether every op the case uses is one of supported (the ops
// package nn registers). A case that cannot be decoded is claimed: reading it is
// the product's job too.
func (c *Case) Claimed(supported map[string]bool) bool {
	for _, op := range c.Ops {
		if !supported[op] {
			return false
		}
	}
	return true
}

// UnclaimedTypes says which of the case's graph inputs and outputs have an element
// type nn does not claim, or "" when there is none. nn computes on FLOAT tensors
// and reads INT64 and INT32 ones as parameters (shapes, axes, indices); a case on
// other types (integers, DOUBLE, BOOL, sequences) tests an op nn never claims.
func (c *Case) UnclaimedTypes() string {
	if c.model == nil {
		return ""
	}
	isInit := map[string]bool{}
	for _, t := range c.model.Graph.Initializers {
		isInit[t.Name] = true
	}
	var odd []string
	describe := func(what string, vi onnx.ValueInfo) {
		switch {
		case vi.ElemType == onnx.DataTypeUndefined:
			odd = append(odd, fmt.Sprintf("%s %s is not a tensor", what, vi.Name))
		case vi.ElemType == onnx.DataTypeFloat:
		case what == "input" && (vi.ElemType == onnx.DataTypeInt64 || vi.ElemType == onnx.DataTypeInt32):
		default:
			odd = append(odd, fmt.Sprintf("%s %s is %s", what, vi.Name, vi.ElemType))
		}
	}
	for _, in := range c.model.Graph.Inputs {
		if !isInit[in.Name] {
			describe("input", in)
		}
	}
	for _, out := range c.model.Graph.Outputs {
		describe("output", out)
	}
	return strings.Join(odd, ", ")
}

// Outcome is what running a case gave.
type Outcome string

// The outcomes of a case. A refusal is an error wrapping nn.ErrUnsupported (the
// builder says it cannot run the case, naming the node and op); every other error,
// a panic, or a value outside the tolerance is a failure.
const (
	Passed  Outcome = "passed"
	Refused Outcome = "refused"
	Failed  Outcome = "failed"
)

// Result is the outcome of one case, with the refusal or failure message.
type Result struct {
	Case    *Case
	Outcome Outcome
	Message string
	// Infer is the outcome of the same rewritten case on pkg/fragile/infer, the
	// forward-only engine verification runs a model on first (it falls back to nn
	// when infer refuses the model), with its message; empty when the case fails
	// before either engine runs (a file that cannot be read).
	Infer        Outcome
	InferMessage string
}

// VerificationPassed reports whether verification's path computes the case
// right: infer when it accepts the case, nn when infer refuses it.
func (r Result) VerificationPassed() bool {
	return r.Infer == Passed || (r.Infer == Refused && r.Outcome == Passed)
}

// Names the rewrite of RunCase adds to a case's graph.
const (
	wrapInput  = "conformance_input"
	wrapOutput = "conformance_output"
)

// RunCase runs the case's first data set through nn, and through infer, and
// compares every output with the expected one.
//
// nn.Compile and infer.Compile take classifiers: one FLOAT input of shape
// (batch, ...) and one output of shape (batch, classes), classes >= 2. Each case is
// rewritten into that form around the unchanged nodes under test: every graph
// input but the first FLOAT one becomes an initializer holding its data-set value
// (node cases take weights, axes and bounds as inputs; real models hold them as
// initializers, so the op builders read them as they would in a real model); the
// remaining input is fed as a (1, dims...) tensor reshaped to its own dims by a
// Reshape node in front; each output in turn is reshaped to (1, n) behind the
// graph, and joined with a zero into (1, 2) when it holds a single value. The outputs' shapes are thereby checked by their element count, their
// layout by the values.
func RunCase(c *Case) (res Result) {
	res.Case = c
	defer func() {
		if p := recover(); p != nil {
			res.Outcome, res.Message = Failed, fmt.Sprintf("panic: %v", p)
		}
	}()
	if c.DecodeErr != nil {
		return fail(c, fmt.Errorf("decoding model.onnx: %w", c.DecodeErr))
	}
	inputs, err := readTensors(filepath.Join(c.Dir, "test_data_set_0"), "input")
	if err != nil {
		return fail(c, err)
	}
	outputs, err := readTensors(filepath.Join(c.Dir, "test_data_set_0"), "output")
	if err != nil {
		return fail(c, err)
	}
	g := &c.model.Graph
	if len(outputs) != len(g.Outputs) {
		return fail(c, fmt.Errorf("the graph has %d outputs, the data set %d", len(g.Outputs), len(outputs)))
	}
	for i, out := range outputs {
		if out.DataType != onnx.DataTypeFloat {
			msg := fmt.Sprintf("output %s is %s: nn computes FLOAT values only (integer shape arithmetic is folded while compiling, never an output)",
				g.Outputs[i].Name, out.DataType)
			return Result{Case: c, Outcome: Refused, Message: msg, Infer: Refused, InferMessage: msg}
		}
	}
	res.Outcome, res.Infer = Passed, Passed
	for i, out := range outputs {
		name := g.Outputs[i].Name
		m, feed, err := rewrite(c.model, inputs, name, len(out.Float))
		if err != nil {
			return fail(c, err)
		}
		want := float64s(out.Float)
		if res.Outcome == Passed {
			res.Outcome, res.Message = judge(runNN, m, feed, name, want)
		}
		if res.Infer == Passed {
			res.Infer, res.InferMessage = judge(runInfer, m, feed, name, want)
		}
	}
	return res
}

func fail(c *Case, err error) Result { return Result{Case: c, Outcome: Failed, Message: err.Error()} }

// engine computes the rewritten case's output (a (1, n) classifier's logits) on
// one runtime.
type engine func(m *onnx.Model, feed []float32) ([]float64, error)

func runNN(m *onnx.Model, feed []float32) ([]float64, error) {
	net, err := nn.Compile(m)
	if err != nil {
		return nil, err
	}
	r, err := nn.NewRunner(net, 1, tensor.Float32)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Logits(feed)
}

func runInfer(m *onnx.Model, feed []float32) ([]float64, error) {
	prog, err := infer.Compile(m)
	if err != nil {
		return nil, err
	}
	r, err := infer.NewRunner[float32](prog, 1, 1)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Logits(feed)
}

// judge runs one engine on the rewritten case and compares its output with want:
// a refusal wraps onnx.ErrUnsupported (nn's and infer's sentinel); any other
// error, a panic or a value outside the tolerance is a failure.
func judge(run engine, m *onnx.Model, feed []float32, output string, want []float64) (outcome Outcome, message string) {
	defer func() {
		if p := recover(); p != nil {
			outcome, message = Failed, fmt.Sprintf("panic: %v", p)
		}
	}()
	got, err := run(m, feed)
	switch {
	case errors.Is(err, onnx.ErrUnsupported):
		return Refused, err.Error()
	case err != nil:
		return Failed, err.Error()
	}
	if len(want) == 1 && len(got) == 2 {
		got = got[:1] // the widening Add's second value
	}
	if err := Compare(got, want); err != nil {
		return Failed, fmt.Sprintf("output %s: %v", output, err)
	}
	return Passed, ""
}

// rewrite returns the case rewritten to compute the named output (size values)
// as a classifier, and the values to feed it.
func rewrite(orig *onnx.Model, inputs []*onnx.Tensor, output string, size int) (*onnx.Model, []float32, error) {
	m := *orig
	g := &m.Graph
	g.Nodes = nil
	g.Initializers = append([]onnx.Tensor(nil), orig.Graph.Initializers...)
	g.Inputs = nil

	isInit := map[string]bool{}
	for _, t := range g.Initializers {
		isInit[t.Name] = true
	}
	var data []onnx.ValueInfo
	for _, in := range orig.Graph.Inputs {
		if !isInit[in.Name] {
			data = append(data, in)
		}
	}
	if len(data) != len(inputs) {
		return nil, nil, fmt.Errorf("the graph has %d inputs, the data set %d", len(data), len(inputs))
	}
	fed := -1
	for i, in := range data {
		if in.ElemType == onnx.DataTypeFloat {
			fed = i
			break
		}
	}
	if fed < 0 && len(data) > 0 {
		fed = 0 // nn.Compile names the element type it refuses
	}
	var feed []float32
	dims := []int64{1}
	for i, in := range data {
		if i == fed {
			continue
		}
		t := *inputs[i]
		t.Name = in.Name
		g.Initializers = append(g.Initializers, t)
	}
	elem := onnx.DataTypeFloat
	if fed >= 0 {
		t := inputs[fed]
		elem, feed = data[fed].ElemType, t.Float
		dims = append(dims, t.Dims...)
		if len(t.Dims) == 0 {
			dims = append(dims, 1) // nn.Compile wants a batch dimension and one more
		}
		g.Nodes = append(g.Nodes, reshape(g, wrapInput, wrapInput, data[fed].Name, t.Dims, orig.Opsets[""]))
	} else {
		feed = []float32{0} // a case without inputs (Constant): an input nothing reads
		dims = append(dims, 1)
	}
	vi := onnx.ValueInfo{Name: wrapInput, ElemType: elem}
	for _, d := range dims {
		vi.Dims = append(vi.Dims, onnx.Dim{Value: d})
	}
	g.Inputs = []onnx.ValueInfo{vi}

	g.Nodes = append(g.Nodes, orig.Graph.Nodes...)
	last := wrapOutput + "_flat"
	g.Nodes = append(g.Nodes, reshape(g, wrapOutput, output, last, []int64{1, -1}, orig.Opsets[""]))
	if size == 1 {
		// Concat rather than a broadcasting Add: Add broadcasts numpy-style only
		// from opset 7, and the cases go back to opset 1.
		g.Initializers = append(g.Initializers, onnx.Tensor{Name: wrapOutput + "_zero", Dims: []int64{1, 1},
			DataType: onnx.DataTypeFloat, Float: []float32{0}})
		g.Nodes = append(g.Nodes, onnx.Node{Name: wrapOutput + "_widen", OpType: "Concat",
			Inputs: []string{last, wrapOutput + "_zero"}, Outputs: []string{wrapOutput},
			Attributes: []onnx.Attribute{{Name: "axis", Type: onnx.AttributeInt, I: 1}}})
		last = wrapOutput
	}
	g.Outputs = []onnx.ValueInfo{{Name: last, ElemType: onnx.DataTypeFloat}}
	return &m, feed, nil
}

// reshape returns the Reshape node prefix_reshape from in to out with the given
// target, in the form the case's opset defines: the target an attribute before
// opset 5, the initializer prefix_shape (added to g) from 5 on.
func reshape(g *onnx.Graph, prefix, in, out string, target []int64, opset int64) onnx.Node {
	node := onnx.Node{Name: prefix + "_reshape", OpType: "Reshape", Inputs: []string{in}, Outputs: []string{out}}
	if opset < 5 {
		node.Attributes = []onnx.Attribute{{Name: "shape", Type: onnx.AttributeInts, Ints: append([]int64(nil), target...)}}
		return node
	}
	g.Initializers = append(g.Initializers, ints(prefix+"_shape", target...))
	node.Inputs = append(node.Inputs, prefix+"_shape")
	return node
}

// readTensors reads prefix_0.pb, prefix_1.pb, ... from dir.
func readTensors(dir, prefix string) ([]*onnx.Tensor, error) {
	var ts []*onnx.Tensor
	for i := 0; ; i++ {
		path := filepath.Join(dir, fmt.Sprintf("%s_%d.pb", prefix, i))
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return ts, nil
		}
		if err != nil {
			return nil, err
		}
		t, err := onnx.DecodeTensor(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		ts = append(ts, t)
	}
}

func ints(name string, v ...int64) onnx.Tensor {
	return onnx.Tensor{Name: name, Dims: []int64{int64(len(v))}, DataType: onnx.DataTypeInt64, Int64: append([]int64{}, v...)}
}

func float64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// joinOps renders a case's ops for a table.
func joinOps(ops []string) string { return strings.Join(ops, ", ") }
