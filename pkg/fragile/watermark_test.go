package fragile_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/internal/onnxtest"
	"github.com/fragile-operator/fragile-operator/internal/zoo"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/attack"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/infer"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/prune"
)

// The acceptance setting of issue 2: mnist-7, 100 triggers, inputs in 0..255.
var mnistOpts = fragile.WatermarkOptions{Triggers: 100, InputMin: 0, InputMax: 255}

// watermarked is one mnist-7 watermark shared by the tests that only read it
// (watermarking takes seconds).
type watermarked struct {
	model    []byte
	key      fragile.Key
	bundle   *fragile.Bundle
	sealed   []byte
	progress []fragile.Progress
	took     time.Duration
}

var (
	mnistOnce sync.Once
	mnistWM   watermarked
	mnistErr  error
)

func mnistWatermark(t *testing.T) *watermarked {
	t.Helper()
	mnistOnce.Do(func() {
		w := &mnistWM
		if w.model, mnistErr = zoo.MNIST7(); mnistErr != nil {
			return
		}
		w.key = testKey(t, 100)
		opts := mnistOpts
		opts.Progress = func(p fragile.Progress) { w.progress = append(w.progress, p) }
		start := time.Now()
		if w.bundle, mnistErr = fragile.Watermark(context.Background(), w.model, w.key, opts); mnistErr != nil {
			return
		}
		w.took = time.Since(start)
		w.sealed, mnistErr = fragile.Seal(w.bundle, w.key)
	})
	if mnistErr != nil {
		t.Fatalf("watermarking mnist-7: %v", mnistErr)
	}
	return &mnistWM
}

func TestWatermarkMNIST7(t *testing.T) {
	w := mnistWatermark(t)
	b := w.bundle
	t.Logf("watermarked in %v, %d steps", w.took.Round(time.Millisecond), b.Steps)

	if b.Len() != 100 || b.Method != fragile.MethodTie || b.Classes != 10 || b.InputName != "Input3" ||
		!slices.Equal(b.InputShape, []int{1, 28, 28}) || b.InputMin != 0 || b.InputMax != 255 {
		t.Errorf("bundle header: %d triggers, method %s, %d classes, input %s %v in [%g, %g]",
			b.Len(), b.Method, b.Classes, b.InputName, b.InputShape, b.InputMin, b.InputMax)
	}
	if b.ModelDigest != sha256.Sum256(w.model) {
		t.Error("the bundle's digest is not the model file's sha256")
	}
	if !slices.Equal(b.KeyLabels, w.key.KeyLabels(100, 10)) {
		t.Error("the bundle's labels are not the key's labels")
	}
	for i, v := range b.Triggers {
		if !(v >= 0 && v <= 255) {
			t.Fatalf("trigger value %d is %g, outside the input range", i, v)
		}
	}

	// 100% key match, checked here by a separate inference run.
	net, err := fragile.LoadNetwork(w.model)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := fragile.Predict(net, b.Triggers, b.Len())
	if err != nil {
		t.Fatal(err)
	}
	matched := 0
	for i := range labels {
		if labels[i] == b.KeyLabels[i] {
			matched++
		}
	}
	if matched != 100 {
		t.Errorf("%d of 100 triggers carry their key label", matched)
	}
	// The recorded margins are the margins of the sealed triggers.
	logits := runFloat32(t, net, b.Triggers, b.Len())
	_, margins := nn.TopTwo(logits, 10)
	for i := range margins {
		if b.Margins[i] <= 0 || float32(margins[i]) != b.Margins[i] {
			t.Errorf("trigger %d: recorded margin %g, measured %g", i, b.Margins[i], margins[i])
		}
	}

	// Progress: one training report per step, counting up, ending at full key match;
	// then one per iteration of the tie refinement, counting up from 0, the share of
	// tied triggers never falling (a trigger keeps its best point).
	training, refinement := w.progress, []fragile.Progress(nil)
	for i, p := range w.progress {
		if p.Phase == fragile.PhaseRefinement {
			training, refinement = w.progress[:i], w.progress[i:]
			break
		}
	}
	if len(training) != b.Steps || len(refinement) == 0 {
		t.Errorf("%d training and %d refinement reports for %d steps", len(training), len(refinement), b.Steps)
	}
	for i, p := range training {
		if p.Phase != fragile.PhaseTraining || p.Step != i+1 || p.MaxSteps != 300 || p.KeyMatch < 0 || p.KeyMatch > 1 {
			t.Errorf("training progress %d: %+v", i, p)
		}
	}
	if last := training[len(training)-1]; last.KeyMatch != 1 || last.Loss != b.FinalLoss {
		t.Errorf("last training progress %+v, final loss %g", last, b.FinalLoss)
	}
	for i, p := range refinement {
		if p.Phase != fragile.PhaseRefinement || p.Step != i || p.MaxSteps <= 0 || p.KeyMatch != 1 ||
			p.Tied < 0 || p.Tied > 1 || (i > 0 && p.Tied < refinement[i-1].Tied) {
			t.Errorf("refinement progress %d: %+v", i, p)
		}
	}

	if opened, err := fragile.Open(w.sealed, w.key); err != nil {
		t.Errorf("Open: %v", err)
	} else if !slices.Equal(opened.Triggers, b.Triggers) {
		t.Error("the sealed triggers differ")
	}
}

// runFloat32 runs inputs on the verification path (pkg/fragile/infer).
func runFloat32(t *testing.T, net *nn.Network, inputs []float32, n int) []float64 {
	t.Helper()
	prog, err := infer.Compile(net.Model())
	if err != nil {
		t.Fatal(err)
	}
	r, err := infer.NewRunner[float32](prog, n, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	logits, err := r.Logits(inputs)
	if err != nil {
		t.Fatal(err)
	}
	return logits
}

func TestVerifyMNIST7(t *testing.T) {
	w := mnistWatermark(t)
	ctx := context.Background()
	digest := sha256.Sum256(w.model)

	t.Run("same file is intact", func(t *testing.T) {
		rep := fragile.Verify(ctx, w.model, w.bundle)
		if rep.Result != fragile.ResultIntact || rep.Total != 100 || rep.Mismatched != 0 || !rep.DigestMatches {
			t.Errorf("report %+v", rep)
		}
		if rep.ModelDigest != "sha256:"+hex.EncodeToString(digest[:]) {
			t.Errorf("model digest %s", rep.ModelDigest)
		}
		if rep.DurationSeconds <= 0 || rep.Result.ExitCode() != 0 {
			t.Errorf("duration %g, exit %d", rep.DurationSeconds, rep.Result.ExitCode())
		}
	})

	t.Run("re-serialised file is intact", func(t *testing.T) {
		// A benign control: other bytes, the same graph and weights.
		m, err := onnx.Decode(w.model)
		if err != nil {
			t.Fatal(err)
		}
		again := onnx.Encode(m)
		if bytes.Equal(again, w.model) {
			t.Fatal("re-encoding gave the same bytes; the control tests nothing")
		}
		rep := fragile.Verify(ctx, again, w.bundle)
		if rep.Result != fragile.ResultIntact || rep.Mismatched != 0 || rep.DigestMatches {
			t.Errorf("report %+v", rep)
		}
	})

	t.Run("weight noise is tampering", func(t *testing.T) {
		// Issue 2's acceptance attack: sigma = 1% of each weight tensor's std.
		noisy, err := attack.Noise(w.model, attack.NoiseOptions{Sigma: 0.01, Relative: true}, rand.New(rand.NewPCG(51, 52)))
		if err != nil {
			t.Fatal(err)
		}
		rep := fragile.Verify(ctx, noisy, w.bundle)
		t.Logf("noise 1%%: %d of %d triggers flipped", rep.Mismatched, rep.Total)
		if rep.Result != fragile.ResultTampered || rep.Mismatched == 0 || rep.DigestMatches || rep.Result.ExitCode() != 1 {
			t.Errorf("report %+v", rep)
		}
		if !strings.Contains(rep.Message, "changed label") {
			t.Errorf("message %q", rep.Message)
		}
	})

	t.Run("a change of twice a margin is tampering", func(t *testing.T) {
		// The last node adds Parameter194 to the logits. Lowering the key label's bias
		// by twice the smallest recorded margin must flip that trigger, whatever else
		// happens: an exact, model-independent test of the comparison.
		low := 0
		for i, m := range w.bundle.Margins {
			if m < w.bundle.Margins[low] {
				low = i
			}
		}
		m, err := onnx.Decode(w.model)
		if err != nil {
			t.Fatal(err)
		}
		bias := slices.Clone(m.Graph.Initializer("Parameter194").Float)
		bias[w.bundle.KeyLabels[low]] -= 2 * w.bundle.Margins[low]
		changed, err := onnx.ReplaceInitializers(w.model, map[string][]float32{"Parameter194": bias})
		if err != nil {
			t.Fatal(err)
		}
		rep := fragile.Verify(ctx, changed, w.bundle)
		t.Logf("bias of class %d lowered by %g: %d of %d triggers flipped", w.bundle.KeyLabels[low], 2*w.bundle.Margins[low], rep.Mismatched, rep.Total)
		if rep.Result != fragile.ResultTampered || rep.Mismatched == 0 {
			t.Errorf("report %+v", rep)
		}
	})

	t.Run("truncated model is an error", func(t *testing.T) {
		rep := fragile.Verify(ctx, w.model[:len(w.model)/2], w.bundle)
		if rep.Result != fragile.ResultError || rep.Result.ExitCode() != 2 || rep.DigestMatches {
			t.Errorf("report %+v", rep)
		}
		if !strings.Contains(rep.Message, "not an ONNX model") {
			t.Errorf("message %q does not name the problem", rep.Message)
		}
	})

	t.Run("other input shape is an error", func(t *testing.T) {
		b := onnxtest.NewBuilder(rand.New(rand.NewPCG(53, 54)), "Input3", 1, 1, 14, 14)
		h := b.Node("Flatten", []string{b.Last()})
		b.Node("MatMul", []string{h, b.Weight("w", 0, 1, 196, 10)})
		rep := fragile.Verify(ctx, onnx.Encode(b.Model(1, 10)), w.bundle)
		if rep.Result != fragile.ResultError || !strings.Contains(rep.Message, "[1 14 14]") || !strings.Contains(rep.Message, "[1 28 28]") {
			t.Errorf("report %+v", rep)
		}
	})

	t.Run("other class count is an error", func(t *testing.T) {
		b := onnxtest.NewBuilder(rand.New(rand.NewPCG(55, 56)), "Input3", 1, 1, 28, 28)
		h := b.Node("Flatten", []string{b.Last()})
		b.Node("MatMul", []string{h, b.Weight("w", 0, 1, 784, 4)})
		rep := fragile.Verify(ctx, onnx.Encode(b.Model(1, 4)), w.bundle)
		if rep.Result != fragile.ResultError || !strings.Contains(rep.Message, "4 classes") {
			t.Errorf("report %+v", rep)
		}
	})

	t.Run("unsupported op is an error", func(t *testing.T) {
		b := onnxtest.NewBuilder(rand.New(rand.NewPCG(57, 58)), "Input3", 1, 1, 28, 28)
		b.Node("LSTM", []string{b.Last()})
		rep := fragile.Verify(ctx, onnx.Encode(b.Model(1, 10)), w.bundle)
		if rep.Result != fragile.ResultError || !strings.Contains(rep.Message, "LSTM") {
			t.Errorf("report %+v", rep)
		}
	})

	t.Run("cancelled is an error", func(t *testing.T) {
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if rep := fragile.Verify(cancelled, w.model, w.bundle); rep.Result != fragile.ResultError {
			t.Errorf("report %+v", rep)
		}
	})

	t.Run("labels differ on the same file is an error", func(t *testing.T) {
		// The file is byte-identical, so a changed label can only come from the runtime
		// (here: from a doctored bundle): never report that as tampering.
		b := *w.bundle
		b.KeyLabels = slices.Clone(b.KeyLabels)
		b.KeyLabels[0] = (b.KeyLabels[0] + 1) % 10
		rep := fragile.Verify(ctx, w.model, &b)
		if rep.Result != fragile.ResultError || rep.Mismatched != 1 || !rep.DigestMatches {
			t.Errorf("report %+v", rep)
		}
	})
}

// TestWatermarkDeterministic watermarks mnist-7 a second time with the same key: the
// sealed bundle must be byte-identical to the first run's.
// TestWatermarkTiesEveryClass checks what makes the default method fragile: every
// class sits just below each trigger's key label (in float64, so the measurement is
// not the rounding it guards against), and Gaussian weight noise far too small to
// move test accuracy flips about (C-1)/C of the triggers, where a two-class boundary
// flips about half.
func TestWatermarkTiesEveryClass(t *testing.T) {
	w := mnistWatermark(t)
	b := w.bundle
	net, err := fragile.LoadNetwork(w.model)
	if err != nil {
		t.Fatal(err)
	}
	r64, err := nn.NewRunner(net, b.Len(), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	defer r64.Close()
	logits, err := r64.Logits(b.Triggers)
	if err != nil {
		t.Fatal(err)
	}
	assertRoundingHeadroom(t, net, b)
	tied := 0
	for i, label := range b.KeyLabels {
		row := logits[i*10 : (i+1)*10]
		largest, farthest, nearest := 0.0, 0.0, math.Inf(1)
		for j, v := range row {
			largest = math.Max(largest, math.Abs(v))
			if j != label {
				farthest = math.Max(farthest, row[label]-v)
				nearest = math.Min(nearest, row[label]-v)
			}
		}
		_ = largest
		// The farthest class sits within the band (tieBand target margins, a few
		// times the float32 rounding with the default noise floor) below the key
		// label; at a two-class boundary on mnist-7 it is of the order of the
		// logits themselves.
		if farthest <= 1e-2*largest {
			tied++
		}
	}
	if tied < 100 {
		t.Errorf("%d of 100 triggers have every class within 1e-2 of the largest logit", tied)
	}

	flipped := 0
	const seeds = 3
	for seed := range uint64(seeds) {
		noisy, err := attack.Noise(w.model, attack.NoiseOptions{Sigma: 5e-4}, rand.New(rand.NewPCG(71, seed)))
		if err != nil {
			t.Fatal(err)
		}
		rep := fragile.Verify(context.Background(), noisy, b)
		if rep.Result != fragile.ResultTampered {
			t.Fatalf("noise sigma 5e-4, seed %d: %+v", seed, rep)
		}
		flipped += rep.Mismatched
	}
	rate := float64(flipped) / float64(seeds*b.Len())
	t.Logf("noise sigma 5e-4: change rate %.2f (%d tied of 100)", rate, tied)
	if rate < 0.8 {
		t.Errorf("noise sigma 5e-4 flipped %.2f of the triggers, want about 0.9", rate)
	}
}

func TestWatermarkDeterministic(t *testing.T) {
	if testing.Short() {
		t.Skip("a second mnist-7 watermark takes seconds")
	}
	w := mnistWatermark(t)
	b, err := fragile.Watermark(context.Background(), w.model, w.key, mnistOpts)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := fragile.Seal(b, w.key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sealed, w.sealed) {
		t.Errorf("two runs with one key gave different bundles (%d and %d bytes)", len(sealed), len(w.sealed))
	}
}

// watermarkMNIST7With watermarks mnist-7 with the key of seed and mnistOpts as edit
// changes them, and returns the model and the bundle.
func watermarkMNIST7With(t *testing.T, seed byte, edit func(*fragile.WatermarkOptions)) ([]byte, *fragile.Bundle) {
	t.Helper()
	model, err := zoo.MNIST7()
	if err != nil {
		t.Fatal(err)
	}
	opts := mnistOpts
	edit(&opts)
	b, err := fragile.Watermark(context.Background(), model, testKey(t, seed), opts)
	if err != nil {
		t.Fatal(err)
	}
	return model, b
}

func TestWatermarkPaperMethod(t *testing.T) {
	if testing.Short() {
		t.Skip("another mnist-7 watermark takes seconds")
	}
	model, b := watermarkMNIST7With(t, 101, func(o *fragile.WatermarkOptions) { o.Method = fragile.MethodPaper })
	if b.Method != fragile.MethodPaper {
		t.Errorf("method %s", b.Method)
	}
	rep := fragile.Verify(context.Background(), model, b)
	if rep.Result != fragile.ResultIntact || rep.Mismatched != 0 || rep.Total != 100 {
		t.Errorf("the paper method's triggers do not verify: %+v", rep)
	}
}

// TestWatermarkKeys watermarks a small model with three keys: the same key gives
// the same bundle, another key other labels and other triggers.
func TestWatermarkKeys(t *testing.T) {
	model := onnx.Encode(onnxtest.ConvNet(rand.New(rand.NewPCG(61, 62))))
	opts := fragile.WatermarkOptions{Triggers: 40}
	run := func(k fragile.Key) ([]byte, *fragile.Bundle) {
		b, err := fragile.Watermark(context.Background(), model, k, opts)
		if err != nil {
			t.Fatal(err)
		}
		if rep := fragile.Verify(context.Background(), model, b); rep.Result != fragile.ResultIntact {
			t.Fatalf("a fresh watermark does not verify: %+v", rep)
		}
		return seal(t, b, k), b
	}
	s1, b1 := run(testKey(t, 102))
	s2, _ := run(testKey(t, 102))
	s3, b3 := run(testKey(t, 103))
	if !bytes.Equal(s1, s2) {
		t.Error("one key, two runs: the bundles differ")
	}
	if bytes.Equal(s1, s3) || slices.Equal(b1.KeyLabels, b3.KeyLabels) {
		t.Error("two keys gave the same bundle or the same labels")
	}
	same := 0
	for i := range b1.Triggers {
		if b1.Triggers[i] == b3.Triggers[i] {
			same++
		}
	}
	if same > len(b1.Triggers)/100 {
		t.Errorf("two keys' triggers share %d of %d values", same, len(b1.Triggers))
	}
}

func TestWatermarkOptionErrors(t *testing.T) {
	model := onnx.Encode(onnxtest.MLP(rand.New(rand.NewPCG(63, 64))))
	k := testKey(t, 104)
	tests := map[string]fragile.WatermarkOptions{
		"unknown method":     {Method: "magic"},
		"negative triggers":  {Triggers: -1},
		"too many triggers":  {Triggers: fragile.MaxTriggers + 1},
		"empty range":        {InputMin: 1, InputMax: 1},
		"inverted range":     {InputMin: 1, InputMax: 0},
		"negative lambda":    {Lambda: -1},
		"negative rate":      {LearningRate: -1e-3},
		"negative steps":     {MaxSteps: -5},
		"infinite diversity": {Diversity: math.Inf(1)},
	}
	for name, opts := range tests {
		t.Run(name, func(t *testing.T) {
			if b, err := fragile.Watermark(context.Background(), model, k, opts); err == nil {
				t.Errorf("no error; %d triggers", b.Len())
			}
		})
	}
	t.Run("not a model", func(t *testing.T) {
		if _, err := fragile.Watermark(context.Background(), []byte("garbage"), k, fragile.WatermarkOptions{}); !errors.Is(err, onnx.ErrNotONNX) {
			t.Errorf("err = %v, want ErrNotONNX", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := fragile.Watermark(ctx, model, k, fragile.WatermarkOptions{}); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("step budget", func(t *testing.T) {
		// One step cannot label 40 triggers as a secret balanced key says.
		if _, err := fragile.Watermark(context.Background(), model, k, fragile.WatermarkOptions{Triggers: 40, MaxSteps: 1}); !errors.Is(err, fragile.ErrNotConverged) {
			t.Errorf("err = %v, want ErrNotConverged", err)
		}
	})
}

// TestWatermarkInsensitiveModel reproduces densenet121's flat loss (BENCHMARKS.md,
// issue 9) in a small graph: a BatchNormalization whose running mean lies above
// every value an input of [0, 1] can take, then a Relu, so every unit is off and
// the logits are the classifier's bias whatever the trigger, as densenet121's with
// BatchNorm statistics of N(0, 1) noise were on mid-grey images. Watermark must say
// so at its first step instead of running out its step budget at an unchanging
// loss; the same model with the running mean at the bottom of the range (every
// unit on) must train.
func TestWatermarkInsensitiveModel(t *testing.T) {
	model := func(mean float32) []byte {
		b := onnxtest.NewBuilder(rand.New(rand.NewPCG(65, 66)), "image", -1, 3, 4, 4)
		scale := b.Const("bn.weight", []float32{1, 1, 1}, 3)
		shift := b.Const("bn.bias", []float32{0, 0, 0}, 3)
		means := b.Const("bn.running_mean", []float32{mean, mean, mean}, 3)
		variance := b.Const("bn.running_var", []float32{1, 1, 1}, 3)
		h := b.Node("BatchNormalization", []string{b.Last(), scale, shift, means, variance})
		h = b.Node("Relu", []string{h})
		h = b.Node("Flatten", []string{h}, onnxtest.AttrInt("axis", 1))
		w := b.Weight("fc.weight", 0, 0.5, 48, 4)
		c := b.Weight("fc.bias", 0, 0.5, 4)
		b.Node("Gemm", []string{h, w, c})
		return onnx.Encode(b.Model(-1, 4))
	}
	k := testKey(t, 105)
	watermark := func(mean float32) (steps int, err error) {
		opts := fragile.WatermarkOptions{Triggers: 10, Progress: func(p fragile.Progress) {
			if p.Phase == fragile.PhaseTraining {
				steps++
			}
		}}
		_, err = fragile.Watermark(context.Background(), model(mean), k, opts)
		return steps, err
	}
	steps, err := watermark(2)
	if !errors.Is(err, fragile.ErrInsensitive) || steps != 1 {
		t.Errorf("running mean 2: %v after %d steps, want ErrInsensitive after 1", err, steps)
	}
	if steps, err := watermark(0); err != nil {
		t.Errorf("running mean 0: %v after %d steps", err, steps)
	} else {
		t.Logf("running mean 0: watermarked after %d steps", steps)
	}
}

// TestWatermarkStopsWhenCancelled checks that each long phase of Watermark returns
// context.Canceled promptly once its context is cancelled: training (cancelled at
// its second step) and the refinements (cancelled at the step that labels every
// trigger, so the generator returns and the bisection sees the cancellation).
func TestWatermarkStopsWhenCancelled(t *testing.T) {
	model, err := zoo.MNIST7()
	if err != nil {
		t.Fatal(err)
	}
	key := testKey(t, 7)
	for name, stopAt := range map[string]func(fragile.Progress) bool{
		"training":   func(p fragile.Progress) bool { return p.Phase == fragile.PhaseTraining && p.Step == 2 },
		"refinement": func(p fragile.Progress) bool { return p.KeyMatch == 1 },
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			opts := mnistOpts
			opts.Progress = func(p fragile.Progress) {
				if stopAt(p) {
					cancel()
				}
			}
			_, err := fragile.Watermark(ctx, model, key, opts)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled", err)
			}
		})
	}
}

// TestWatermarkMeasures checks the measures the bundle records against the
// triggers: the logit scale and the smallest distance recomputed here, the unit and
// weight fractions within (0, 1], and the natural scale absent without natural images.
func TestWatermarkMeasures(t *testing.T) {
	w := mnistWatermark(t)
	b, m := w.bundle, w.bundle.Measures
	net, err := fragile.LoadNetwork(w.model)
	if err != nil {
		t.Fatal(err)
	}
	logits := runFloat32(t, net, b.Triggers, b.Len())
	scales := make([]float64, b.Len())
	for i := range scales {
		for _, v := range logits[i*10 : (i+1)*10] {
			scales[i] = math.Max(scales[i], math.Abs(v))
		}
	}
	slices.Sort(scales)
	if got := scales[len(scales)/2]; math.Abs(got-m.TriggerLogitScale) > 1e-6*got {
		t.Errorf("trigger logit scale %g, recomputed %g", m.TriggerLogitScale, got)
	}
	nearest := math.Inf(1)
	size := b.InputSize()
	for i := 0; i < b.Len(); i++ {
		for j := i + 1; j < b.Len(); j++ {
			sum := 0.0
			for k := range size {
				d := float64(b.Trigger(i)[k] - b.Trigger(j)[k])
				sum += d * d
			}
			nearest = math.Min(nearest, math.Sqrt(sum/float64(size))/255)
		}
	}
	if math.Abs(nearest-m.MinDistance) > 1e-9 || m.MedianDistance < m.MinDistance {
		t.Errorf("distances min %g median %g, recomputed min %g", m.MinDistance, m.MedianDistance, nearest)
	}
	for name, f := range map[string]float64{"active units": m.ActiveUnits, "weight coverage": m.WeightCoverage} {
		if !(f > 0 && f <= 1) {
			t.Errorf("%s %g: want a fraction in (0, 1]", name, f)
		}
	}
	if m.NaturalLogitScale != 0 {
		t.Errorf("natural logit scale %g measured without natural images", m.NaturalLogitScale)
	}
	t.Logf("measures: %+v", m)
}

// TestWatermarkCompetitors checks the guarantee of a tie to k competitors: every
// trigger keeps its key label above every class by the margin floor, and its k
// strongest runner-up classes sit within the tie band of the key label; the other
// classes are only guaranteed below it.
func TestWatermarkCompetitors(t *testing.T) {
	if testing.Short() {
		t.Skip("another mnist-7 watermark takes seconds")
	}
	model, b := watermarkMNIST7With(t, 33, func(o *fragile.WatermarkOptions) { o.Competitors = 3 })
	if b.Competitors != 3 {
		t.Errorf("bundle records %d competitors, want 3", b.Competitors)
	}
	net, err := fragile.LoadNetwork(model)
	if err != nil {
		t.Fatal(err)
	}
	logits := runFloat32(t, net, b.Triggers, b.Len())
	assertRoundingHeadroom(t, net, b)
	tied := 0
	for i, label := range b.KeyLabels {
		row := logits[i*10 : (i+1)*10]
		largest := 0.0
		var gaps []float64
		for j, v := range row {
			largest = math.Max(largest, math.Abs(v))
			if j != label {
				gaps = append(gaps, row[label]-v)
			}
		}
		slices.Sort(gaps)
		// Tied: the third-nearest class within the band (4 x TieMargin floors, as in
		// TestWatermarkTiesEveryClass, of the logit scale).
		if gaps[2] <= 1e-2*largest {
			tied++
		}
	}
	if tied < 95 {
		t.Errorf("%d of 100 triggers have their 3 competitors within 1e-2 of the largest logit", tied)
	}
}

// assertRoundingHeadroom checks the tie's safety rule (issue 10): every trigger's
// top-1/top-2 margin is at least 8 times the largest difference between its float32
// and float64 logits on the verification path, so rounding of the size float32 makes
// cannot move a label.
func assertRoundingHeadroom(t *testing.T, net *nn.Network, b *fragile.Bundle) {
	t.Helper()
	inputs := b.ModelInputs()
	z32 := runFloat32(t, net, inputs, b.Len())
	r64, err := fragile.NewVerificationRunner(net, b.Len(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer r64.Close()
	z64, err := r64.Logits(inputs)
	if err != nil {
		t.Fatal(err)
	}
	_, margins := nn.TopTwo(z32, b.Classes)
	tightest := math.Inf(1)
	for i, margin := range margins {
		worst := 0.0
		for j := i * b.Classes; j < (i+1)*b.Classes; j++ {
			worst = math.Max(worst, math.Abs(z32[j]-z64[j]))
		}
		if worst > 0 {
			tightest = math.Min(tightest, margin/worst)
		}
	}
	t.Logf("tightest margin: %.3gx its float32-float64 logit difference", tightest)
	if tightest < 8 {
		t.Errorf("a trigger's margin is only %.3gx its float32-float64 logit difference, want at least 8x", tightest)
	}
}

// TestWatermarkDiversity checks the duplicate penalty on mnist-7: with it the
// closest pair of triggers lies farther apart than without (the shared watermark,
// same key and trigger count), training goes on past the first full key match for
// a bounded number of steps, the bundle records the weight through sealing, and
// the model still verifies intact.
func TestWatermarkDiversity(t *testing.T) {
	if testing.Short() {
		t.Skip("a second mnist-7 watermark")
	}
	plain := mnistWatermark(t)
	opts := mnistOpts
	opts.Diversity = 1
	ctx := context.Background()
	b, err := fragile.Watermark(ctx, plain.model, plain.key, opts)
	if err != nil {
		t.Fatal(err)
	}
	got, want := b.Measures, plain.bundle.Measures
	t.Logf("median distance %.3g (without the penalty %.3g), min %.3g (%.3g), active units %.3g (%.3g), coverage %.3g (%.3g), steps %d (%d)",
		got.MedianDistance, want.MedianDistance, got.MinDistance, want.MinDistance, got.ActiveUnits, want.ActiveUnits,
		got.WeightCoverage, want.WeightCoverage, b.Steps, plain.bundle.Steps)
	if !(got.MinDistance > want.MinDistance) {
		t.Errorf("smallest pairwise distance %g with the penalty, %g without", got.MinDistance, want.MinDistance)
	}
	if b.Steps < plain.bundle.Steps || b.Steps > plain.bundle.Steps+20 {
		t.Errorf("%d training steps with the penalty, %d without: want between %[2]d and 20 more", b.Steps, plain.bundle.Steps)
	}
	if plain.bundle.Diversity != 0 {
		t.Errorf("the default watermark records a diversity of %g", plain.bundle.Diversity)
	}
	sealed, err := fragile.Seal(b, plain.key)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := fragile.Open(sealed, plain.key)
	if err != nil {
		t.Fatal(err)
	}
	if opened.Diversity != 1 {
		t.Errorf("sealed bundle records diversity %g, want 1", opened.Diversity)
	}
	if rep := fragile.Verify(ctx, plain.model, b); rep.Result != fragile.ResultIntact {
		t.Errorf("the watermarked model verifies %s: %s", rep.Result, rep.Message)
	}
}

// TestWatermarkStepSizeFallsWhenStalled: on a model whose classes 0 and 1 always
// score alike, triggers keyed 0 or 1 can never be labelled, so the key match stalls;
// the generator's step size must fall by plateauFactor after each 20 steps without
// a new best (at most four times), the progress must say so, and the error must
// name --learning-rate.
func TestWatermarkStepSizeFallsWhenStalled(t *testing.T) {
	const classes = 4
	b := onnxtest.NewBuilder(rand.New(rand.NewPCG(67, 68)), "image", -1, 3, 4, 4)
	h := b.Node("Flatten", []string{b.Last()}, onnxtest.AttrInt("axis", 1))
	r := rand.New(rand.NewPCG(69, 70))
	w := make([]float32, 48*classes)
	for i := 0; i < 48; i++ {
		for c := 1; c < classes; c++ {
			w[i*classes+c] = float32(r.NormFloat64())
		}
		w[i*classes] = w[i*classes+1] // class 0 is class 1
	}
	b.Node("Gemm", []string{h, b.Const("fc.weight", w, 48, classes)})
	model := onnx.Encode(b.Model(-1, classes))
	var rates []float64
	opts := fragile.WatermarkOptions{Triggers: 10, MaxSteps: 150, Progress: func(p fragile.Progress) { rates = append(rates, p.LearningRate) }}
	_, err := fragile.Watermark(context.Background(), model, testKey(t, 106), opts)
	if !errors.Is(err, fragile.ErrNotConverged) || !strings.Contains(err.Error(), "--learning-rate") {
		t.Fatalf("watermark: %v, want ErrNotConverged naming --learning-rate", err)
	}
	if len(rates) != opts.MaxSteps || rates[0] != 1e-3 {
		t.Fatalf("%d progress reports starting at rate %v, want %d starting at 1e-3", len(rates), rates[:min(1, len(rates))], opts.MaxSteps)
	}
	cuts, last := 0, rates[0]
	for step, rate := range rates {
		if rate == last {
			continue
		}
		if math.Abs(rate/last-1/math.Sqrt(10)) > 1e-9 {
			t.Fatalf("step %d: rate %g after %g, want a cut by 1/sqrt(10)", step+1, rate, last)
		}
		cuts, last = cuts+1, rate
	}
	if cuts != 4 {
		t.Errorf("%d cuts in %d stalled steps (final rate %g), want 4", cuts, opts.MaxSteps, last)
	}
}

// TestWatermarkPruningProbe runs the opt-in pruning remedy (noise-floor margins and
// the pruning probe, BENCHMARKS.md issue 11) on mnist-7: it must keep every
// guarantee of the tie (the watermarked file intact, in both precisions' floors),
// and its triggers must see the probe's own attack, 1% magnitude pruning, at least
// as well as the default's.
func TestWatermarkPruningProbe(t *testing.T) {
	model, err := zoo.MNIST7()
	if err != nil {
		t.Fatal(err)
	}
	pruned, err := prune.Smallest(model, fragile.PruningProbeFraction)
	if err != nil {
		t.Fatal(err)
	}
	key := testKey(t, 108)
	flipped := map[string]int{}
	for name, edit := range map[string]func(*fragile.WatermarkOptions){
		"default": func(*fragile.WatermarkOptions) {},
		"probe": func(o *fragile.WatermarkOptions) {
			o.NoiseMargin, o.PruneProbe = fragile.PruningNoiseMargin, fragile.PruningProbeFraction
		},
	} {
		opts := mnistOpts
		opts.Triggers = 20
		edit(&opts)
		b, err := fragile.Watermark(context.Background(), model, key, opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r := fragile.Verify(context.Background(), model, b); r.Result != fragile.ResultIntact {
			t.Fatalf("%s: the watermarked file verifies %s: %s", name, r.Result, r.Message)
		}
		r := fragile.Verify(context.Background(), pruned, b)
		flipped[name] = r.Mismatched
		t.Logf("%s: 1%% pruning flips %d of %d triggers (%s)", name, r.Mismatched, r.Total, r.Result)
	}
	if flipped["probe"] < flipped["default"] {
		t.Errorf("1%% pruning flips %d triggers with the probe, %d without", flipped["probe"], flipped["default"])
	}
}
