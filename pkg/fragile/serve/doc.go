// Package serve is a small Open Inference Protocol (KServe V2) REST server for one
// ONNX classifier, run by `fragile serve`. It exists for the demo and the tests: it
// lets the endpoint verifier meet a real server whose model can be swapped underneath
// it while it runs, the way an attacker would swap a deployed model.
//
// It implements the specification's required REST API for one model and one version
// ("1"): GET /v2/health/live, GET /v2/health/ready, GET /v2 (server metadata),
// GET /v2/models/NAME[/versions/1] (model metadata; a symbolic batch dimension is -1),
// GET /v2/models/NAME[/versions/1]/ready and POST /v2/models/NAME[/versions/1]/infer
// with FP32 tensors, flat or nested data. Failures answer with the specification's
// {"error": "..."} body: 400 for a bad request, 404 for an unknown model, version or
// path, 405 for a wrong method, 503 while the model is not loaded, 500 when inference
// fails. Health answers carry an empty body, as the specification says they should.
// Binary tensor data (a Triton extension) is refused with 400.
//
// The model file is re-read on Reload, which `fragile serve` calls on SIGHUP and when
// Watch sees the file's size, modification time or inode change. A file whose bytes
// are unchanged keeps the loaded model; one that does not load leaves the model not
// ready (503) until a later reload succeeds, rather than serving the previous one.
//
// Inference uses the product's own runner (pkg/fragile/nn), one compiled graph per
// batch size, run one request at a time. Request bodies and batch sizes are bounded.
package serve
