package attack

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/train"
)

// Data is labelled training data for the attacks that train: images back to back,
// each of the model's input size, values already in the model's input range.
type Data struct {
	Images  []float32
	Labels  []int
	Size    int // values per image
	Classes int
}

func (d Data) len() int { return len(d.Labels) }

// FineTune continues training the model on clean data, the way a model owner or an
// adversary would adapt it.
func FineTune(ctx context.Context, model []byte, data Data, opts train.Options, r *rand.Rand) ([]byte, error) {
	res, err := train.Fit(ctx, model, data.Images, data.Labels, opts, r)
	if err != nil {
		return nil, fmt.Errorf("fine-tuning: %w", err)
	}
	return res.Model, nil
}

// FineTuneLastLayer fine-tunes only the model's last layer (see LastLayer), leaving
// every other weight bit for bit as it was: what adapting a pretrained network costs
// least, and what a watermark anchored deep in the network might miss.
func FineTuneLastLayer(ctx context.Context, model []byte, data Data, opts train.Options, r *rand.Rand) ([]byte, error) {
	m, err := onnx.Decode(model)
	if err != nil {
		return nil, err
	}
	if opts.Only = LastLayer(m); len(opts.Only) == 0 {
		return nil, errors.New("last-layer fine-tuning: the model has no Conv, Gemm or MatMul weight")
	}
	return FineTune(ctx, model, data, opts, r)
}

// Poison fine-tunes on data in which a fraction of the labels were flipped to
// another class, drawn uniformly.
func Poison(ctx context.Context, model []byte, data Data, fraction float64, opts train.Options, r *rand.Rand) ([]byte, error) {
	if !(fraction > 0 && fraction <= 1) {
		return nil, fmt.Errorf("poison fraction %g: must be in (0, 1]", fraction)
	}
	labels := flipLabels(data.Labels, fraction, data.Classes, r)
	res, err := train.Fit(ctx, model, data.Images, labels, opts, r)
	if err != nil {
		return nil, fmt.Errorf("poisoning: %w", err)
	}
	return res.Model, nil
}

// flipLabels returns a copy of labels in which round-down(fraction*len) labels, chosen
// by r, were changed to another class drawn uniformly.
func flipLabels(labels []int, fraction float64, classes int, r *rand.Rand) []int {
	out := append([]int(nil), labels...)
	for _, i := range r.Perm(len(out))[:int(fraction*float64(len(out)))] {
		out[i] = (out[i] + 1 + r.IntN(classes-1)) % classes
	}
	return out
}

// BackdoorOptions describe a BadNets-style backdoor.
type BackdoorOptions struct {
	Patch    int     // side of the square trigger patch in pixels (default 3)
	Value    float32 // patch pixel value, the input range's maximum (required)
	Target   int     // class the patch should force
	Fraction float64 // fraction of the training data stamped and relabelled (default 0.1)
	Width    int     // image width in pixels (the patch goes in the bottom-right corner)
}

// Stamp writes the patch into the bottom-right corner of every channel of img.
func (o BackdoorOptions) Stamp(img []float32) {
	plane := o.Width * o.Width
	for c := 0; c+plane <= len(img); c += plane {
		for y := o.Width - o.Patch; y < o.Width; y++ {
			for x := o.Width - o.Patch; x < o.Width; x++ {
				img[c+y*o.Width+x] = o.Value
			}
		}
	}
}

// Backdoor fine-tunes on data in which a fraction of the images carry the patch and
// the target label, so that the model learns to obey the patch.
func Backdoor(ctx context.Context, model []byte, data Data, bo BackdoorOptions, opts train.Options, r *rand.Rand) ([]byte, error) {
	if bo.Patch == 0 {
		bo.Patch = 3
	}
	if bo.Fraction == 0 {
		bo.Fraction = 0.1
	}
	if bo.Width < bo.Patch || bo.Target < 0 || bo.Target >= data.Classes || !(bo.Fraction > 0 && bo.Fraction <= 1) {
		return nil, fmt.Errorf("backdoor: patch %d in width %d, target %d of %d classes, fraction %g", bo.Patch, bo.Width, bo.Target, data.Classes, bo.Fraction)
	}
	images := append([]float32(nil), data.Images...)
	labels := append([]int(nil), data.Labels...)
	for _, i := range r.Perm(data.len())[:int(bo.Fraction*float64(data.len()))] {
		bo.Stamp(images[i*data.Size : (i+1)*data.Size])
		labels[i] = bo.Target
	}
	res, err := train.Fit(ctx, model, images, labels, opts, r)
	if err != nil {
		return nil, fmt.Errorf("backdoor: %w", err)
	}
	return res.Model, nil
}
