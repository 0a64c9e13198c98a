// Package onnxtest supports the tests of the ML core: a Builder that writes small
// ONNX classifiers in Go (weights from an explicit math/rand/v2 source), two such
// models (an MLP with BatchNormalization after a Gemm, and a small ConvNet), and Run,
// a plain float64 interpreter written from the ONNX operator definitions. Run shares
// no code with pkg/fragile/nn, so agreement between the two is evidence rather than
// tautology; it also records which Relu inputs were positive and which element each
// MaxPool chose, so gradient checks can tell when a finite difference crosses a kink.
//
// Nothing outside tests imports this package.
package onnxtest
