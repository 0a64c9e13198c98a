// Package onnx reads and writes the parts of the ONNX protobuf format that a
// feed-forward image classifier uses: the graph's nodes, attributes, initializers
// and input/output descriptions.
//
// It is a small protowire codec rather than a generated one for three reasons.
// onnx-go (our reference runtime) keeps its generated types internal, so they cannot
// be reused for writing; two generated ONNX packages in one binary collide in the
// protobuf registry; and a hand-written decoder can bound every length and count, so
// a hostile file yields an error rather than a panic or a huge allocation.
//
// Writing comes in two forms: Encode builds a file from a Model (for models this
// project trains), and ReplaceInitializers rewrites only the initializer values of an
// existing file, keeping every other byte (doc strings, metadata, unknown fields) as
// it was.
package onnx
