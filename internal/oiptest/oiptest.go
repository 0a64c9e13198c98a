// Package oiptest holds what the Open Inference Protocol tests share: the
// specification's own examples, replayed against both the endpoint client and
// `fragile serve`, and a small watermarked model with a fine-tuned copy.
package oiptest

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/fragile-operator/fragile-operator/internal/onnxtest"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/attack"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/serve"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/train"
)

// The specification's examples (required_api.md, "HTTP/REST"): the inference request
// and response examples verbatim (the response with the comma after "id" that the
// specification's text lacks), and tensor data in its nested and flattened forms. The
// metadata and error bodies follow the specification's schemas
// ($metadata_model_response, $inference_error_response), which it gives no example of.
const (
	// SpecInferRequest is the request example of "Inference Request Examples": two
	// inputs, UINT32 and BOOL, and one requested output.
	SpecInferRequest = `{
  "id" : "42",
  "inputs" : [
    {
      "name" : "input0",
      "shape" : [ 2, 2 ],
      "datatype" : "UINT32",
      "data" : [ 1, 2, 3, 4 ]
    },
    {
      "name" : "input1",
      "shape" : [ 3 ],
      "datatype" : "BOOL",
      "data" : [ true ]
    }
  ],
  "outputs" : [
    {
      "name" : "output0"
    }
  ]
}`
	// SpecInferResponse is the response example: one FP32 output of shape [3, 2].
	SpecInferResponse = `{
  "id" : "42",
  "outputs" : [
    {
      "name" : "output0",
      "shape" : [ 3, 2 ],
      "datatype"  : "FP32",
      "data" : [ 1.0, 1.1, 2.0, 2.1, 3.0, 3.1 ]
    }
  ]
}`
	// SpecNestedData and SpecFlatData are "Tensor Data": the matrix [[1 2] [4 5]] in its
	// natural and its flattened form.
	SpecNestedData = `[ [ 1, 2 ], [ 4, 5 ] ]`
	SpecFlatData   = `[ 1, 2, 4, 5 ]`
	// SpecErrorResponse is $inference_error_response.
	SpecErrorResponse = `{ "error" : "unexpected inference input 'input9'" }`
	// SpecModelMetadata is $metadata_model_response with a variable batch dimension (-1),
	// as Triton and KServe report it.
	SpecModelMetadata = `{
  "name" : "mymodel",
  "versions" : [ "1", "2" ],
  "platform" : "onnxruntime_onnx",
  "inputs" : [
    { "name" : "input0", "datatype" : "FP32", "shape" : [ -1, 1, 10, 10 ] }
  ],
  "outputs" : [
    { "name" : "output0", "datatype" : "FP32", "shape" : [ -1, 4 ] }
  ]
}`
)

// Watermarked is a small ConvNet (1x10x10 inputs, symbolic batch, 4 classes), its
// sealed bundle of 40 triggers, the key, and a copy of the model fine-tuned on random
// data: different weights, the same architecture and file layout.
type Watermarked struct {
	Model, FineTuned []byte
	Key              fragile.Key
	Bundle           *fragile.Bundle
	Sealed           []byte
}

var (
	once    sync.Once
	fixture *Watermarked
	fixErr  error
)

// Fixture builds the Watermarked fixture once per test binary (a few seconds).
func Fixture() (*Watermarked, error) {
	once.Do(func() { fixture, fixErr = build() })
	return fixture, fixErr
}

func build() (*Watermarked, error) {
	ctx := context.Background()
	w := &Watermarked{Model: onnx.Encode(onnxtest.ConvNet(rand.New(rand.NewPCG(61, 62))))}
	var err error
	if w.Key, err = fragile.NewKey(newSeeded(7)); err != nil {
		return nil, err
	}
	if w.Bundle, err = fragile.Watermark(ctx, w.Model, w.Key, fragile.WatermarkOptions{Triggers: 40, InputMin: 0, InputMax: 1}); err != nil {
		return nil, err
	}
	if w.Sealed, err = fragile.Seal(w.Bundle, w.Key); err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(8, 9))
	const n, size = 64, 100
	data := attack.Data{Images: make([]float32, n*size), Labels: make([]int, n), Size: size, Classes: 4}
	for i := range data.Images {
		data.Images[i] = r.Float32()
	}
	for i := range data.Labels {
		data.Labels[i] = r.IntN(4)
	}
	w.FineTuned, err = attack.FineTune(ctx, w.Model, data, train.Options{Steps: 5, BatchSize: 16, LearningRate: 0.01}, r)
	return w, err
}

// seeded is a deterministic io.Reader for keys.
type seeded struct{ r *rand.Rand }

func newSeeded(seed uint64) *seeded { return &seeded{rand.New(rand.NewPCG(seed, seed+1))} }

func (s *seeded) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(s.r.Uint32())
	}
	return len(p), nil
}

// Served is the fixture's watermarked model behind `fragile serve`'s handler on loopback.
type Served struct {
	*Watermarked
	Server *serve.Server
	URL    string // the server's base URL
	Path   string // the model file it serves, convnet.onnx (served as "convnet")
}

// Serve starts the handler, wrapped by wrap (nil: as is), for the rest of the test.
func Serve(t testing.TB, wrap func(http.Handler) http.Handler) *Served {
	t.Helper()
	w, err := Fixture()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "convnet.onnx")
	if err := os.WriteFile(path, w.Model, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := serve.New(path, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	h := s.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return &Served{Watermarked: w, Server: s, URL: ts.URL, Path: path}
}
