// Package torchtest finds the PyTorch fixtures (torchvision classifiers exported to
// ONNX with seeded weights, and PyTorch's own logits) that hack/torch/fixtures.sh
// exports, for tests that run real architectures.
//
// The directory is $FRAGILE_TORCH_DIR when set, else the most recent export under
// ~/.cache/fragile-operator/torch (one directory per exporter version, each with a
// manifest.json). Tests skip, saying how to get the fixtures, when neither exists.
package torchtest

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// Families are the nine torchvision classifier families issue 9 names.
var Families = []string{
	"resnet18", "mobilenet_v2", "mobilenet_v3_small", "squeezenet1_1", "efficientnet_b0",
	"shufflenet_v2_x0_5", "densenet121", "regnet_x_400mf", "vgg11_bn",
}

// Dir returns the fixtures directory, or skips tb when there is none.
func Dir(tb testing.TB) string {
	tb.Helper()
	if dir := os.Getenv("FRAGILE_TORCH_DIR"); dir != "" {
		return dir
	}
	home, err := os.UserHomeDir()
	if err == nil {
		manifests, _ := filepath.Glob(filepath.Join(home, ".cache", "fragile-operator", "torch", "*", "manifest.json"))
		sort.Slice(manifests, func(i, j int) bool { return modTime(manifests[i]) > modTime(manifests[j]) })
		if len(manifests) > 0 {
			return filepath.Dir(manifests[0])
		}
	}
	tb.Skip("no PyTorch fixtures: run `export FRAGILE_TORCH_DIR=\"$(hack/torch/fixtures.sh)\"` first")
	return ""
}

func modTime(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.ModTime().UnixNano()
}

// Fixture is one exported model and PyTorch's logits for a few inputs.
type Fixture struct {
	Name  string
	Model []byte
	// Inputs holds the examples back to back; Logits PyTorch's logits for them.
	Inputs, Logits []float32
}

// Path is the model file of fixture name in dir.
func Path(dir, name string) string { return filepath.Join(dir, name+".onnx") }

// Load reads fixture name (e.g. "resnet18_32_op13") from dir, or skips tb when
// that fixture is absent.
func Load(tb testing.TB, dir, name string) *Fixture {
	tb.Helper()
	model, err := os.ReadFile(Path(dir, name))
	if os.IsNotExist(err) {
		tb.Skipf("fixture %s is not in %s", name, dir)
	}
	if err != nil {
		tb.Fatal(err)
	}
	f := &Fixture{Name: name, Model: model}
	if f.Inputs, err = readFloats(filepath.Join(dir, name+".inputs.f32")); err != nil {
		tb.Fatal(err)
	}
	if f.Logits, err = readFloats(filepath.Join(dir, name+".logits.f32")); err != nil {
		tb.Fatal(err)
	}
	return f
}

// readFloats reads raw little-endian float32 values.
func readFloats(path string) ([]float32, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data)%4 != 0 {
		return nil, fmt.Errorf("%s: %d bytes is not a whole number of float32 values", path, len(data))
	}
	out := make([]float32, len(data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return out, nil
}
