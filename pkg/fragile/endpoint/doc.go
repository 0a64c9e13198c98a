// Package endpoint verifies a fragile watermark against a live model served over the
// Open Inference Protocol (KServe V2, REST): KServe, Triton, MLServer, OpenVINO Model
// Server, or `fragile serve`. It needs no access to the model's files, only its top-1
// answers, and imports nothing from Kubernetes.
//
// A verification asks GET /v2/health/ready and GET /v2/models/NAME/ready, reads the
// model's metadata (input name, FP32 datatype, shape with -1 for variable dimensions),
// checks it against the watermarked model, then sends every trigger once as FP32
// infer requests: batched up to Config.BatchSize when the batch dimension is -1,
// exactly the declared batch otherwise. Triggers and decoys are shuffled together in
// an order drawn from crypto/rand for each run, so neither the position of a trigger
// nor the number of triggers can be read off the traffic, and no two runs look alike.
// Responses may carry flat or nested data; top-1 is the arg max of each row.
//
// Every request has a timeout; transient failures (no connection, timeouts, 429, 5xx)
// are retried a bounded number of times with jittered exponential backoff; at most
// Config.Concurrency requests are in flight; every response body is read through a
// size bound before it is parsed. TLS can use a private CA, and arbitrary headers (a
// bearer token, an API key) go with every request and never into a message.
//
// # What an endpoint check proves, and what it cannot
//
// Intact means: at the time of the check, the server answered every trigger with its
// key label. Since a fragile trigger flips under small weight changes, that is strong
// evidence that the model answering those requests computes what the watermarked
// model computes. Tampered means the answers came back well formed and at least one
// label differs: whatever answered is not the watermarked model (or runs it with
// numerics far from the ones it was watermarked with).
//
// It cannot prove that the same model answers other clients. A server that recognises
// verification traffic (by source address, credentials, timing, or by the triggers'
// statistics, which decoys share but natural inputs do not) can route it to the
// original model and serve a modified one to everyone else. Shuffling and decoys make
// recognition from the request stream harder, not impossible; they hide which answers
// count, not that a verification happens. An endpoint check also says nothing about
// the bytes on disk (there is no digest to compare: the report's modelDigest is empty)
// nor about what is served between checks. Run it from an ordinary client's network
// position and credentials, at unannounced times, next to artifact verification.
package endpoint
