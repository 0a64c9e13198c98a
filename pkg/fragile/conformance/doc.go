// Package conformance checks the graph builder of package nn against other
// runtimes' numbers, through the path the product takes (onnx.Decode, nn.Compile,
// nn.Runner).
//
// Two sources of truth are used. The ONNX project's backend test suite (Debian's
// libonnx-testdata: node and pytorch-converted cases, each a model and the outputs
// the reference implementation gives) is run case by case; RunCase rewrites a case
// into the one-input classifier shape nn.Compile accepts without changing what the
// op under test computes (see RunCase), and runs it on nn and on pkg/fragile/infer,
// the forward-only engine verification uses first. Its tests write
// docs/conformance.md and fail on any wrong value or panic, on either engine, and
// when fewer than MinPassPercent of the claimed cases pass on nn. The
// PyTorch fixtures (hack/torch/fixtures.sh: torchvision families exported with
// seeded weights, and PyTorch's logits) are compared with PyTorch and with
// onnxruntime, which runs in its own process (hack/ortrun) because it must never
// share one with gorgonia.
//
// Both compare at rtol 1e-4 and atol 1e-5: |ours - theirs| <= atol + rtol*|theirs|.
package conformance
