package nn_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	onnxgo "github.com/owulveryck/onnx-go"
	"github.com/owulveryck/onnx-go/backend/x/gorgonnx"
	"gorgonia.org/tensor"
)

// onnxGoLogits runs one mnist-7 image through onnx-go's own gorgonnx backend, the
// project's named reference runtime. A fresh model per call: onnx-go's graph is not
// guaranteed to be reusable (its Gemm writes into its bias at batch size 1).
func onnxGoLogits(model []byte, image []float32) (logits []float64, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("onnx-go panicked: %v", p)
		}
	}()
	backend := gorgonnx.NewGraph()
	m := onnxgo.NewModel(backend)
	if err := m.UnmarshalBinary(model); err != nil {
		return nil, err
	}
	in := tensor.New(tensor.WithShape(1, 1, 28, 28), tensor.WithBacking(append([]float32(nil), image...)))
	if err := m.SetInput(0, in); err != nil {
		return nil, err
	}
	if err := backend.Run(); err != nil {
		return nil, err
	}
	out, err := m.GetOutputTensors()
	if err != nil {
		return nil, err
	}
	data, ok := out[0].Data().([]float32)
	if !ok || len(data) != 10 {
		return nil, fmt.Errorf("onnx-go output %T of shape %v", out[0].Data(), out[0].Shape())
	}
	for _, v := range data {
		logits = append(logits, float64(v))
	}
	return logits, nil
}

// TestMNIST7AgreesWithOnnxGo compares our float32 logits with onnx-go's on the zoo
// images and on random images (whose logits no file records).
func TestMNIST7AgreesWithOnnxGo(t *testing.T) {
	_, net := mnist7(t)
	r := rand.New(rand.NewPCG(13, 14))
	var images [][]float32
	for i := 0; i < 3; i++ {
		image, _ := zooSet(t, i)
		images = append(images, image)
	}
	for i := 0; i < 3; i++ {
		images = append(images, randomImages(r, 1, 784))
	}
	var batch []float32
	for _, image := range images {
		batch = append(batch, image...)
	}
	ours := runLogits(t, net, len(images), tensor.Float32, batch)
	for i, image := range images {
		want, err := onnxGoLogits(mnistBytes, image)
		if err != nil {
			t.Fatalf("image %d: onnx-go: %v", i, err)
		}
		got := ours[i*10 : (i+1)*10]
		if d := relDiff(got, want, 10); d > zooTol {
			t.Errorf("image %d: ours %v, onnx-go %v: relative difference %.3g > %g", i, got, want, d, zooTol)
		}
		if argmax(got) != argmax(want) {
			t.Errorf("image %d: label %d, onnx-go says %d", i, argmax(got), argmax(want))
		}
	}
}
