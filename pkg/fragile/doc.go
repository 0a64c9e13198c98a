// Package fragile is the machine-learning core of fragile-operator: fragile
// watermarking of a frozen ONNX image classifier, after Yin, Yin and Zhang,
// "Neural network fragile watermarking with no model performance degradation"
// (ICIP 2022).
//
// A secret Key determines everything: the generator's noise inputs, the key labels,
// the generator's initial weights and the keys that seal the Bundle. Watermark trains
// the generator against the frozen classifier until every trigger it produces is
// labelled as the key says, then (by default, MethodTie) moves each trigger to a
// point where every class ties with its key label up to a margin a few times the
// float32 noise floor, and seals the triggers into a Bundle. Verify runs the
// triggers through a (possibly modified) model and compares top-1 labels with the
// key: any change is tampering, while a model or bundle that cannot be read is an
// error, never tampering.
//
// This package imports nothing from Kubernetes; the operator drives it through the
// fragile command's subcommands and the JSON reports in report.go. Every random draw
// comes from a math/rand/v2 ChaCha8 source seeded from the key, so the same key and
// model give byte-identical bundles.
package fragile
