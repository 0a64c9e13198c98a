// Package infer runs a decoded ONNX classifier (pkg/fragile/onnx) forward only, for
// verification: no gradient graph, no gorgonia.
//
// Compile validates the model and folds everything that does not depend on the
// input (weights-only subgraphs and the Shape -> Gather -> Unsqueeze -> Concat ->
// Reshape arithmetic PyTorch emits). NewRunner plans the remaining nodes as a list
// of kernels over buffers allocated once per runner and reused by every run:
//
//   - Conv writes each example's output straight into NCHW with one GEMM per group
//     over a per-example column buffer (none at all for 1x1 stride-1 kernels;
//     stride-1 kernels compute on the padded input's full width, so each column row
//     is one copy), and a direct kernel for depthwise convolutions. A
//     BatchNormalization that follows is folded into its weights; the bias, a
//     residual Add and the activation that follow are applied in the same pass over
//     the output.
//   - Activations, elementwise ops and reshapes work in place when the value has no
//     other consumer.
//
// A runner computes each example on its own, with the same kernels and buffer
// sizes whatever the batch: a trigger's logits are bitwise independent of its
// position in the batch and of the batch size (tested). Runners spread examples
// over Threads workers, each with its own buffers, and keep the BLAS single-threaded,
// so results do not depend on the thread count either (BLAS results vary with
// OpenBLAS's own thread count; see blas_openblas.go).
//
// The GEMM is gonum's pure-Go implementation by default; the build tag openblas
// links OpenBLAS through cgo (gonum.org/v1/netlib), measured in BENCHMARKS.md.
package infer
