// Package nn compiles an ONNX image classifier into a differentiable gorgonia
// expression graph.
//
// The graph is built by this package from the ONNX weights, op by op, rather than
// by onnx-go's gorgonnx backend, because gorgonnx has no gradient for Gemm,
// BatchNormalization, LeakyRelu or ImageScaler (Grad panics on them), its
// BatchNormalization takes only 4-D input, and at batch size 1 its Gemm writes into
// its own bias. Every op here is a composition of gorgonia primitives that have
// gradients, so one graph gives both input gradients (trigger training) and weight
// gradients (attack tools), and every op is batched: a model whose ONNX graph bakes
// in batch size 1 (mnist-7 reshapes to 1x256) is rebuilt for any batch size.
//
// Compile validates a model once and reports what cannot be run with the node and op
// named ("node Conv_3: op LSTM is not supported"); Build adds the classifier to a
// caller's graph; Runner is the inference convenience on top.
package nn
