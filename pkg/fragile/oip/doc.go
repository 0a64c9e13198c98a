// Package oip is the wire format of the Open Inference Protocol (the KServe V2
// inference protocol) over HTTP/REST, as far as fragile needs it: model metadata,
// inference requests and responses with FP32 tensors, and error bodies. Both the
// endpoint client (pkg/fragile/endpoint) and `fragile serve` (pkg/fragile/serve)
// speak it through these types, so the two cannot drift apart.
//
// Everything read from the network is untrusted. ReadJSON bounds the bytes read
// before decoding, and Data decodes tensor values, flat or nested, with its own
// scanner that bounds the nesting depth and checks that nested arrays are
// rectangular and agree with the declared shape.
//
// Specification: https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol
// (the same text as the Open Inference Protocol's required_api.md).
package oip
