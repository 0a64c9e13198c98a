package fragile

import (
	"errors"
	"fmt"

	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/infer"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// logitRunner runs fixed-size batches of examples to logits: the inference path
// Verify takes, and the one every margin Watermark guarantees is checked on.
type logitRunner interface {
	Logits(inputs []float32) ([]float64, error)
	Close()
}

// InferenceThreads is how many examples verification computes at once (0: one per
// CPU the Go runtime may use). Results do not depend on it: each example is
// computed alone, single-threaded (pkg/fragile/infer).
var InferenceThreads = 0

// newRunner returns the runner for batch examples of m in float32 or, with
// double, float64: the forward-only engine (pkg/fragile/infer), or the gradient
// builder's graph when the engine refuses the model and net, compiled by the
// caller, accepts it. Watermark and Verify choose the same way for the same file,
// so a watermark is always checked on the path that will verify it.
func newRunner(m *onnx.Model, net *nn.Network, batch int, double bool) (logitRunner, error) {
	prog, err := infer.Compile(m)
	switch {
	case err == nil && double:
		return infer.NewRunner[float64](prog, batch, InferenceThreads)
	case err == nil:
		return infer.NewRunner[float32](prog, batch, InferenceThreads)
	case !errors.Is(err, infer.ErrUnsupported) || net == nil:
		return nil, err
	}
	dtype := tensor.Float32
	if double {
		dtype = tensor.Float64
	}
	return nn.NewRunner(net, batch, dtype)
}

// inferenceModel is a decoded model ready to verify: the engine's program, or the
// gradient builder's network when the engine refuses the model.
type inferenceModel struct {
	InputName, OutputName string
	InputShape            []int
	Classes               int
	run                   func(batch int) (logitRunner, error)
}

// loadForVerify decodes and compiles a model for verification. It compiles the
// gradient builder's graph only when the engine refuses the model: that is the
// slow path, and both must refuse for verification to fail.
func loadForVerify(model []byte) (im *inferenceModel, err error) {
	defer func() {
		if p := recover(); p != nil {
			im, err = nil, fmt.Errorf("loading the model: internal error: %v", p)
		}
	}()
	m, err := onnx.Decode(model)
	if err != nil {
		return nil, err
	}
	prog, err := infer.Compile(m)
	if err == nil {
		return &inferenceModel{
			InputName: prog.InputName, OutputName: prog.OutputName, InputShape: prog.InputShape, Classes: prog.Classes,
			run: func(batch int) (logitRunner, error) { return infer.NewRunner[float32](prog, batch, InferenceThreads) },
		}, nil
	}
	if !errors.Is(err, infer.ErrUnsupported) {
		return nil, err
	}
	net, nnErr := nn.Compile(m)
	if nnErr != nil {
		return nil, nnErr
	}
	return &inferenceModel{
		InputName: net.InputName, OutputName: net.OutputName, InputShape: net.InputShape, Classes: net.Classes,
		run: func(batch int) (logitRunner, error) { return nn.NewRunner(net, batch, tensor.Float32) },
	}, nil
}

// predict returns the top-1 label of each of n examples laid out back to back.
func (im *inferenceModel) predict(inputs []float32, n int) ([]int, error) {
	r, err := im.run(n)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	logits, err := r.Logits(inputs)
	if err != nil {
		return nil, err
	}
	labels, _ := nn.TopTwo(logits, im.Classes)
	return labels, nil
}

// NewVerificationRunner returns a runner for batch examples of net on the path Verify
// takes (float64 when double is set), so that the evaluation's benign controls vary
// one thing at a time against verification itself.
func NewVerificationRunner(net *nn.Network, batch int, double bool) (interface {
	Logits(inputs []float32) ([]float64, error)
	Close()
}, error) {
	return newRunner(net.Model(), net, batch, double)
}
