// Package eval runs the detection benchmark of REFERENCE.md section 3: protected
// models x attacks x trigger methods, with fixed seeds, measuring detection rate,
// change rate, first-flip queries and the attacked model's accuracy, plus the benign
// controls that must never alarm (a re-serialised file, float64 inference, a
// different batch size, and an independent runtime in its own process). The
// protected models are Fashion-MNIST models trained here, the ONNX zoo's mnist-7,
// the real CIFAR-10 classifiers of ../shared/realmodels and the PyTorch fixtures of
// hack/torch. It renders a markdown report and PNG plots.
package eval
