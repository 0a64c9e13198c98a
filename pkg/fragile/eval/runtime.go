package eval

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// OnnxRuntime builds hack/ortrun (in the repository at repoRoot) into workDir and
// returns a Runtime that runs it, onnxruntime's shared library at lib, in its own
// process: onnxruntime must never share a process with gorgonia.
func OnnxRuntime(repoRoot, lib, workDir string) (Runtime, error) {
	bin, err := BuildOrtRun(repoRoot, workDir)
	if err != nil {
		return nil, err
	}
	return func(model []byte, b *fragile.Bundle) ([]float64, error) {
		res, err := RunOrtRun(bin, lib, workDir, model, b, 1)
		if err != nil {
			return nil, err
		}
		return res.Logits, nil
	}, nil
}

// BuildOrtRun builds hack/ortrun (in the repository at repoRoot) into workDir and
// returns the binary's path.
func BuildOrtRun(repoRoot, workDir string) (string, error) {
	bin := filepath.Join(workDir, "ortrun")
	build := exec.Command("go", "build", "-tags", "ort", "-o", bin, "./hack/ortrun")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building hack/ortrun: %v: %s", err, out)
	}
	return bin, nil
}

// OrtResult is what one hack/ortrun run measured.
type OrtResult struct {
	RoundSeconds []float64 // duration of each round over all triggers
	// RoundCPUSeconds is the CPU time of each round (onnxruntime's process, every thread).
	RoundCPUSeconds []float64
	Labels          []int     // top-1 label of each trigger in the last round
	Logits          []float64 // (triggers x classes) logits of the last round, row-major
}

// RunOrtRun runs the bundle's triggers through the model with the ortrun binary bin,
// one trigger at a time, rounds times, on one thread.
func RunOrtRun(bin, lib, workDir string, model []byte, b *fragile.Bundle, rounds int) (*OrtResult, error) {
	return RunOrtRunThreads(bin, lib, workDir, model, b, rounds, 1)
}

// RunOrtRunThreads is RunOrtRun with threads intra-op threads.
func RunOrtRunThreads(bin, lib, workDir string, model []byte, b *fragile.Bundle, rounds, threads int) (*OrtResult, error) {
	dir, err := os.MkdirTemp(workDir, "run")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// The names and class count come from the file and the bundle, not a compiled
	// graph: onnxruntime runs models our gradient builder may not.
	m, err := onnx.Decode(model)
	if err != nil {
		return nil, err
	}
	if len(m.Graph.Outputs) == 0 {
		return nil, fmt.Errorf("the model declares no output")
	}
	outputName, classes := m.Graph.Outputs[0].Name, b.Classes
	modelPath, inputsPath := filepath.Join(dir, "model.onnx"), filepath.Join(dir, "inputs.f32")
	inputs := b.ModelInputs()
	raw := make([]byte, 4*len(inputs))
	for i, v := range inputs {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	if err := os.WriteFile(modelPath, model, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(inputsPath, raw, 0o644); err != nil {
		return nil, err
	}
	shape := make([]string, len(b.InputShape))
	for i, d := range b.InputShape {
		shape[i] = fmt.Sprint(d)
	}
	cmd := exec.Command(bin, "-lib", lib, "-model", modelPath, "-inputs", inputsPath, "-n", fmt.Sprint(b.Len()),
		"-input-name", b.InputName, "-output-name", outputName, "-shape", strings.Join(shape, "x"),
		"-classes", fmt.Sprint(classes), "-rounds", fmt.Sprint(rounds), "-threads", fmt.Sprint(threads))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("onnxruntime: %v: %s", err, stderr.String())
	}
	var res struct {
		RoundSeconds    []float64
		RoundCPUSeconds []float64
		Logits          [][]float32
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("onnxruntime output: %w", err)
	}
	if len(res.Logits) != b.Len() {
		return nil, fmt.Errorf("onnxruntime returned %d rows for %d triggers", len(res.Logits), b.Len())
	}
	result := &OrtResult{RoundSeconds: res.RoundSeconds, RoundCPUSeconds: res.RoundCPUSeconds}
	for i, row := range res.Logits {
		if len(row) != classes {
			return nil, fmt.Errorf("onnxruntime returned %d logits for trigger %d, the model has %d classes", len(row), i, classes)
		}
		for _, v := range row {
			result.Logits = append(result.Logits, float64(v))
		}
	}
	result.Labels, _ = nn.TopTwo(result.Logits, classes)
	return result, nil
}
