// Package nn compiles an ONNX image classifier into a differentiable gorgonia
// expression graph.
//
// The graph is built by this package from the ONNX weights, op by op, rather than
// by onnx-go's gorgonnx backend, because gorgonnx has no gradient for Gemm,
// BatchNormalization, LeakyRelu or ImageScaler (Grad panics on them), its
// BatchNormalization takes only 4-D input, and at batch size 1 its Gemm writes into
// its own bias. Every op here has a gradient, so one graph gives both input
// gradients (trigger training) and weight gradients (attack tools), and every op is
// batched: a model whose ONNX graph bakes in batch size 1 (mnist-7 reshapes to
// 1x256, torch.onnx.export writes batch 1) is rebuilt for any batch size.
//
// Layout: build.go is the builder core (one input fetch for every op, constants,
// attribute readers); the ops are grouped by kind in ops_elementwise.go,
// ops_activation.go, ops_conv.go, ops_linear.go, ops_pool.go, ops_volume.go (3-D
// and higher convolution and pooling), ops_normalisation.go, ops_reduce.go and
// ops_shape.go, with the shape logic they share with constant folding in
// shapes.go. Most ops are compositions of gorgonia primitives. What gorgonia
// v0.9.18 lacks (grouped and depthwise convolution, asymmetric padding, average
// and ceil-mode pooling, convolution and pooling over 3 or more spatial axes, Pad
// in every mode, strided Slice, Gather, Split, Clip, the hard activations, Pow by
// a tensor and batched MatMul) runs on plain-Go kernels (kernels_*.go) behind one
// gorgonia Op with a symbolic gradient (kernel.go), and so do Concat and
// BatchNormalization's per-channel affine step, whose gorgonia compositions had
// wrong gradients in whole models (kernels_layout.go). Values of more than 4 axes
// are broadcast only inside those kernels: gorgonia's broadcasting stops at 4. The
// integer shape arithmetic PyTorch exports (Shape -> Gather -> Unsqueeze -> Concat
// -> Reshape, integer Div and Cast) is folded into constants while building
// (fold.go) and never reaches the graph.
//
// Compile validates a model once, at the batch size the file declares, and reports
// what cannot be run with the node and op named ("node Conv_3: op LSTM is not
// supported"), wrapping ErrUnsupported; Build adds the classifier to a caller's
// graph; Runner is the inference convenience on top.
package nn
