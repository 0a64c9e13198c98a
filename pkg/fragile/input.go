package fragile

import (
	"errors"
	"fmt"
	"math"
	"runtime"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/infer"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
)

// Normalization is what the serving pipeline does to an image before the model sees
// it, as torchvision's Normalize states it: (pixel - Mean[c]) / Std[c], c the value's
// channel. Triggers are made and stored in pixel space, inside the declared input
// range, so every trigger is an image the pipeline accepts; the model file sees them
// normalised. The zero value is no normalisation.
type Normalization struct {
	// Mean and Std hold one value per channel, or one value for every channel.
	Mean, Std []float64
	// Axis is the channel axis of one example (InputShape's index, no batch axis):
	// 0 for NCHW models, the last axis for NHWC ones. Watermark resolves it from the
	// input shape and the bundle records it.
	Axis int
}

// IsZero reports whether n leaves inputs unchanged.
func (n Normalization) IsZero() bool { return len(n.Mean) == 0 && len(n.Std) == 0 }

// maxChannels bounds Mean and Std: no image has more channels.
const maxChannels = 64

// resolve checks n against one example's shape and returns it with Axis set: the
// first axis whose size is the number of channels given (NCHW), else the last (NHWC).
// One value applies to every element and needs no axis.
func (n Normalization) resolve(shape []int) (Normalization, error) {
	if n.IsZero() {
		return n, nil
	}
	switch {
	case len(n.Mean) != len(n.Std):
		return n, fmt.Errorf("input normalisation: %d means and %d standard deviations; give one of each per channel", len(n.Mean), len(n.Std))
	case len(n.Mean) > maxChannels:
		return n, fmt.Errorf("input normalisation: %d channels, at most %d", len(n.Mean), maxChannels)
	}
	for c, s := range n.Std {
		if !(s > 0) || math.IsInf(s, 0) || math.IsNaN(n.Mean[c]) || math.IsInf(n.Mean[c], 0) {
			return n, fmt.Errorf("input normalisation: channel %d has mean %g and standard deviation %g; the deviation must be positive and both finite", c, n.Mean[c], s)
		}
	}
	if len(n.Mean) == 1 {
		n.Axis = 0
		return n, nil
	}
	for _, axis := range []int{0, len(shape) - 1} {
		if axis >= 0 && axis < len(shape) && shape[axis] == len(n.Mean) {
			n.Axis = axis
			return n, nil
		}
	}
	return n, fmt.Errorf("input normalisation: %d channels given, but the model's input %v has %d values on its first axis and %d on its last", len(n.Mean), shape, shape[0], shape[len(shape)-1])
}

// normalizer applies a resolved Normalization to examples of one shape, element by
// element in float32, as a serving pipeline does: (x - mean) / std.
type normalizer struct {
	mean, std []float32 // per element of one example; nil for no normalisation
}

func newNormalizer(n Normalization, shape []int) normalizer {
	if n.IsZero() {
		return normalizer{}
	}
	size := 1
	for _, d := range shape {
		size *= d
	}
	// inner is the number of elements per step of the channel axis.
	inner := 1
	for _, d := range shape[n.Axis+1:] {
		inner *= d
	}
	m := normalizer{mean: make([]float32, size), std: make([]float32, size)}
	for e := range size {
		c := 0
		if len(n.Mean) > 1 {
			c = e / inner % shape[n.Axis]
		}
		m.mean[e], m.std[e] = float32(n.Mean[c]), float32(n.Std[c])
	}
	return m
}

// apply returns the model's inputs for pixel-space examples laid out back to back.
// With no normalisation it returns pixels itself.
func (m normalizer) apply(pixels []float32) []float32 {
	if m.mean == nil {
		return pixels
	}
	out := make([]float32, len(pixels))
	size := len(m.mean)
	for i, v := range pixels {
		out[i] = (v - m.mean[i%size]) / m.std[i%size]
	}
	return out
}

// pullBack turns a gradient with respect to the model's inputs into one with respect
// to the pixels, in place: d/dpixel = d/dinput / std.
func (m normalizer) pullBack(grad []float64) {
	if m.mean == nil {
		return
	}
	size := len(m.std)
	for i := range grad {
		grad[i] /= float64(m.std[i%size])
	}
}

// affine returns per-element a and b with apply(x) = a*x + b up to rounding, for
// graphs that normalise inside the expression (the generator's output).
func (m normalizer) affine() (a, b []float32, ok bool) {
	if m.mean == nil {
		return nil, nil, false
	}
	a, b = make([]float32, len(m.mean)), make([]float32, len(m.mean))
	for e := range a {
		a[e] = 1 / m.std[e]
		b[e] = -m.mean[e] / m.std[e]
	}
	return a, b, true
}

// ModelInputs returns the triggers as the model file sees them: normalised as the
// bundle records, back to back. With no normalisation it is Triggers itself.
func (b *Bundle) ModelInputs() []float32 {
	return newNormalizer(b.Normalization, b.InputShape).apply(b.Triggers)
}

// errNormalization marks a bundle whose recorded normalisation does not fit its input.
var errNormalization = errors.New("normalisation does not fit the input shape")

// target is the frozen model as triggers meet it: pixel-space examples, normalised
// as the serving pipeline does, run in float32 (the verification path) and in
// float64 (every refinement checks accepted points in both).
type target struct {
	net      *nn.Network
	norm     normalizer
	r32, r64 logitRunner
	// perExample is the memory of one example's activations as the inference
	// engine counts them (0 when the engine refuses the model): what bounds the
	// shards of the gradient graphs (graphShardBytes).
	perExample int64
}

func newTarget(net *nn.Network, batch int, norm normalizer) (*target, error) {
	r32, err := newRunner(net.Model(), net, batch, false)
	if err != nil {
		return nil, err
	}
	r64, err := newRunner(net.Model(), net, batch, true)
	if err != nil {
		r32.Close()
		return nil, err
	}
	t := &target{net: net, norm: norm, r32: r32, r64: r64}
	if prog, err := infer.Compile(net.Model()); err == nil {
		t.perExample = prog.ActivationBytes(1)
	}
	return t, nil
}

// inputGradient compiles the model's input gradient for batches of n, one shard per
// core, each of at most maxShardExamples(t.perExample) examples.
func (t *target) inputGradient(n int) (*nn.InputGradient, error) {
	return nn.NewInputGradientShards(t.net, n, runtime.GOMAXPROCS(0), maxShardExamples(t.perExample))
}

func (t *target) logits32(pixels []float32) ([]float64, error) {
	return t.r32.Logits(t.norm.apply(pixels))
}
func (t *target) logits64(pixels []float32) ([]float64, error) {
	return t.r64.Logits(t.norm.apply(pixels))
}

// Close releases both runners.
func (t *target) Close() {
	t.r32.Close()
	t.r64.Close()
}

// normalizeNode maps the generator's (n x size) pixel node to the model's input,
// shaped (n, shape...), normalised inside the graph so the loss differentiates
// through it.
func normalizeNode(pixels *G.Node, norm normalizer, shape []int) (*G.Node, error) {
	x := pixels
	if a, b, ok := norm.affine(); ok {
		size := len(a)
		g := pixels.Graph()
		scale := G.NewMatrix(g, tensor.Float32, G.WithShape(1, size), G.WithName("normalize_scale"),
			G.WithValue(tensor.New(tensor.WithShape(1, size), tensor.WithBacking(a))))
		shift := G.NewMatrix(g, tensor.Float32, G.WithShape(1, size), G.WithName("normalize_shift"),
			G.WithValue(tensor.New(tensor.WithShape(1, size), tensor.WithBacking(b))))
		var err error
		if x, err = G.BroadcastHadamardProd(x, scale, nil, []byte{0}); err != nil {
			return nil, fmt.Errorf("normalising the generator's output: %w", err)
		}
		if x, err = G.BroadcastAdd(x, shift, nil, []byte{0}); err != nil {
			return nil, fmt.Errorf("normalising the generator's output: %w", err)
		}
	}
	return G.Reshape(x, append([]int{pixels.Shape()[0]}, shape...))
}
