// Package zoo extracts the ONNX model zoo's MNIST model (mnist-7) and its reference
// test data from the onnx-go module in the Go module cache. The model ships inside
// that module as a Go string literal; extracting it at test or demo time keeps the
// file out of this repository.
package zoo

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
)

// onnxGoModule is the module that carries mnist-7; its version comes from go.mod.
const onnxGoModule = "github.com/owulveryck/onnx-go"

var (
	dirOnce sync.Once
	dir     string
	dirErr  error
)

// moduleDir downloads (if needed) and locates the onnx-go module at the version
// this repository's go.mod requires.
func moduleDir() (string, error) {
	dirOnce.Do(func() {
		out, err := exec.Command("go", "mod", "download", "-json", onnxGoModule+"@"+onnxGoVersion()).Output()
		if err != nil {
			dirErr = fmt.Errorf("go mod download %s: %w", onnxGoModule, err)
			return
		}
		var info struct{ Dir, Error string }
		if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
			dirErr = fmt.Errorf("go mod download %s: no directory (%s)", onnxGoModule, info.Error)
			return
		}
		dir = info.Dir
	})
	return dir, dirErr
}

// onnxGoVersion is the onnx-go version linked into this binary (every binary that
// uses this package links onnx-go through pkg/fragile's tests or tools), so the
// download works from any directory, not only inside this module.
func onnxGoVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == onnxGoModule {
				return dep.Version
			}
		}
	}
	return "v0.5.0"
}

// MNIST7 returns the bytes of the mnist-7 ONNX model.
func MNIST7() ([]byte, error) {
	d, err := moduleDir()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(d, "internal", "examples", "mnist", "mnist_binary.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		return nil, err
	}
	var model []byte
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.BasicLit)
		if ok && lit.Kind == token.STRING && model == nil {
			if s, err := strconv.Unquote(lit.Value); err == nil && len(s) > 1000 {
				model = []byte(s)
			}
		}
		return model == nil
	})
	if model == nil {
		return nil, fmt.Errorf("%s: no model string literal found", path)
	}
	return model, nil
}

// MNIST7TestData returns the reference input and output TensorProto files of
// test_data_set_<i> (i in 0..2).
func MNIST7TestData(i int) (input, output []byte, err error) {
	d, err := moduleDir()
	if err != nil {
		return nil, nil, err
	}
	base := filepath.Join(d, "internal", "examples", "mnist", fmt.Sprintf("test_data_set_%d", i))
	if input, err = os.ReadFile(filepath.Join(base, "input_0.pb")); err != nil {
		return nil, nil, err
	}
	output, err = os.ReadFile(filepath.Join(base, "output_0.pb"))
	return input, output, err
}
