package onnx

import "errors"

// ErrUnsupported is wrapped by every error about a model feature a runtime of this
// project cannot run. It lives here, below every runtime, so the gradient builder
// (pkg/fragile/nn) and the inference engine (pkg/fragile/infer) refuse models with
// the one sentinel callers test for.
var ErrUnsupported = errors.New("unsupported model")
