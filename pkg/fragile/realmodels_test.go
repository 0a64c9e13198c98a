package fragile_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/fragile-operator/fragile-operator/internal/zoo"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/attack"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/dataset"
)

// realModelTriggers bounds the cost of TestRealCIFARModels: eleven watermarks.
const realModelTriggers = 30

// TestRealCIFARModels is issue 9's acceptance for the real CIFAR-10 classifiers of
// ../shared/realmodels/cifar10, trained by other people: every one watermarks with
// the normalisation its authors documented (marabou's NHWC models take raw pixels),
// every trigger is a pixel image of [0,1], the watermarked file verifies intact and
// a copy with relative weight noise of 1e-3 is tampered. It skips, saying so, when the
// folder is absent (it is not part of the repository).
func TestRealCIFARModels(t *testing.T) {
	dir, err := zoo.RealModelsDir("../..")
	if errors.Is(err, zoo.ErrNoRealModels) {
		t.Skipf("skipping the real CIFAR-10 models: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if testing.Short() {
		t.Skip("eleven real-model watermarks take minutes")
	}
	images, err := dataset.CIFAR10Binary(dir + "/" + zoo.CIFARImagesFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, rm := range zoo.CIFARModels {
		t.Run(rm.Name, func(t *testing.T) {
			model, err := os.ReadFile(rm.Path(dir))
			if err != nil {
				t.Fatal(err)
			}
			opts := fragile.WatermarkOptions{Triggers: realModelTriggers, InputMin: 0, InputMax: 1, Natural: images.Images}
			if rm.Normalises() {
				for c := range 3 {
					opts.Normalization.Mean = append(opts.Normalization.Mean, float64(rm.Mean[c]))
					opts.Normalization.Std = append(opts.Normalization.Std, float64(rm.Std[c]))
				}
			}
			if rm.ChannelsLast {
				opts.Natural = images.ChannelsLast().Images
			}
			start := time.Now()
			b, err := fragile.Watermark(context.Background(), model, testKey(t, 90), opts)
			if err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			for i, v := range b.Triggers {
				if v < 0 || v > 1 {
					t.Fatalf("trigger value %d is %g, outside the pixel range [0, 1]", i, v)
				}
			}
			if r := fragile.Verify(context.Background(), model, b); r.Result != fragile.ResultIntact {
				t.Fatalf("the watermarked file verifies %s: %s", r.Result, r.Message)
			}
			noisy, err := attack.Noise(model, attack.NoiseOptions{Sigma: 1e-3, Relative: true}, rand.New(rand.NewPCG(9, 1)))
			if err != nil {
				t.Fatal(err)
			}
			r := fragile.Verify(context.Background(), noisy, b)
			if r.Result != fragile.ResultTampered {
				t.Fatalf("noise 1e-3 relative: %s (%s)", r.Result, r.Message)
			}
			m := b.Measures
			t.Logf("watermark %.1fs; noise 1e-3 flipped %d of %d; logit scale %.3g (natural %.3g), units %.0f%%, weights %.0f%%, distance min %.3g",
				took.Seconds(), r.Mismatched, r.Total, m.TriggerLogitScale, m.NaturalLogitScale, 100*m.ActiveUnits, 100*m.WeightCoverage, m.MinDistance)
		})
	}
}
