package fragile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
)

// Verify runs the bundle's triggers through the model (the ONNX file's bytes) and
// compares top-1 labels with the key labels.
//
// The result is ResultTampered only when the model ran and at least one label
// changed. Anything that prevents a verdict is ResultError with a message: a model
// that does not decode or compile, an input shape or class count different from the
// watermarked model's, or a cancelled context. A byte-identical file whose labels
// differ also yields ResultError, since the file cannot have been tampered with:
// such a difference can only come from the inference runtime.
func Verify(ctx context.Context, model []byte, b *Bundle) VerifyReport {
	start := time.Now()
	digest := sha256.Sum256(model)
	report := VerifyReport{
		Total:         b.Len(),
		DigestMatches: digest == b.ModelDigest,
		ModelDigest:   "sha256:" + hex.EncodeToString(digest[:]),
	}
	fail := func(format string, args ...any) VerifyReport {
		report.Result = ResultError
		report.Message = fmt.Sprintf(format, args...)
		report.DurationSeconds = time.Since(start).Seconds()
		return report
	}
	if err := ctx.Err(); err != nil {
		return fail("verification cancelled: %v", err)
	}
	net, err := loadForVerify(model)
	if err != nil {
		return fail("model: %v", err)
	}
	if !slices.Equal(net.InputShape, b.InputShape) {
		return fail("model input %s takes examples of shape %v, the watermark was made for %v", net.InputName, net.InputShape, b.InputShape)
	}
	if net.Classes != b.Classes {
		return fail("model output %s has %d classes, the watermark was made for %d", net.OutputName, net.Classes, b.Classes)
	}
	if err := ctx.Err(); err != nil {
		return fail("verification cancelled: %v", err)
	}
	labels, err := net.predict(b.ModelInputs(), b.Len())
	if err != nil {
		return fail("running the triggers: %v", err)
	}
	for i, l := range labels {
		if l != b.KeyLabels[i] {
			report.Mismatched++
		}
	}
	switch {
	case report.Mismatched == 0:
		report.Result = ResultIntact
	case report.DigestMatches:
		return fail("%d of %d trigger labels differ although the model file is byte-identical to the watermarked one: the inference runtime does not reproduce the watermarking numerics", report.Mismatched, report.Total)
	default:
		report.Result = ResultTampered
		report.Message = fmt.Sprintf("%d of %d triggers changed label", report.Mismatched, report.Total)
	}
	report.DurationSeconds = time.Since(start).Seconds()
	return report
}

// Predict returns the top-1 label of each of n examples laid out back to back,
// evaluated in float32 on the path Verify takes, the one Watermark confirms its
// triggers on.
func Predict(net *nn.Network, inputs []float32, n int) ([]int, error) {
	im := &inferenceModel{Classes: net.Classes, run: func(batch int) (logitRunner, error) {
		return newRunner(net.Model(), net, batch, false)
	}}
	return im.predict(inputs, n)
}
