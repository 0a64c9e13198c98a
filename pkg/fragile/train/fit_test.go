package train

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// stripes is a learnable synthetic task on 28x28 images: the label is the
// horizontal band (of ten) that is brightest, plus noise.
func stripes(n int, r *rand.Rand) ([]float32, []int) {
	images := make([]float32, n*784)
	labels := make([]int, n)
	for i := range labels {
		labels[i] = r.IntN(10)
		img := images[i*784 : (i+1)*784]
		for p := range img {
			img[p] = float32(0.3 * r.Float64())
		}
		for y := labels[i] * 2; y < labels[i]*2+3 && y < 28; y++ {
			for x := 0; x < 28; x++ {
				img[y*28+x] += 0.7
			}
		}
	}
	return images, labels
}

func TestFitLearnsAndChangesOnlyTrainableWeights(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	images, labels := stripes(600, r)
	testImages, testLabels := stripes(300, r)
	for _, arch := range []string{"mlp", "mlp-bn"} {
		t.Run(arch, func(t *testing.T) {
			model, err := New(arch, rand.New(rand.NewPCG(1, 1)))
			if err != nil {
				t.Fatal(err)
			}
			before, err := Accuracy(model, testImages, testLabels)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Fit(context.Background(), model, images, labels, Options{Steps: 150, BatchSize: 32, LearningRate: 0.02}, rand.New(rand.NewPCG(2, 2)))
			if err != nil {
				t.Fatal(err)
			}
			first, last := mean(res.Losses[:10]), mean(res.Losses[len(res.Losses)-10:])
			if !(last < first/2) {
				t.Errorf("loss went from %.3f to %.3f, want at least halved", first, last)
			}
			after, err := Accuracy(res.Model, testImages, testLabels)
			if err != nil {
				t.Fatal(err)
			}
			if after < 0.9 || after <= before {
				t.Errorf("held-out accuracy %.3f before, %.3f after training; want > 0.9", before, after)
			}
			old, _ := onnx.Decode(model)
			trained, err := onnx.Decode(res.Model)
			if err != nil {
				t.Fatal(err)
			}
			if len(old.Graph.Nodes) != len(trained.Graph.Nodes) {
				t.Fatalf("graph changed: %d nodes, now %d", len(old.Graph.Nodes), len(trained.Graph.Nodes))
			}
			for i, w := range old.Graph.Initializers {
				changed := !slices.Equal(w.Float, trained.Graph.Initializers[i].Float)
				frozen := w.Name == "bn.running_mean" || w.Name == "bn.running_var"
				if frozen && changed {
					t.Errorf("%s is a running statistic but training changed it", w.Name)
				}
				if !frozen && !changed {
					t.Errorf("%s was not trained", w.Name)
				}
			}
		})
	}
}

func TestFitRejectsBadInput(t *testing.T) {
	model, _ := New("mlp", rand.New(rand.NewPCG(1, 1)))
	r := rand.New(rand.NewPCG(1, 2))
	images, labels := stripes(10, r)
	cases := map[string]func() error{
		"label out of range": func() error {
			bad := append([]int(nil), labels...)
			bad[0] = 10
			_, err := Fit(context.Background(), model, images, bad, Options{Steps: 1, LearningRate: 0.1}, r)
			return err
		},
		"short images": func() error {
			_, err := Fit(context.Background(), model, images[:100], labels, Options{Steps: 1, LearningRate: 0.1}, r)
			return err
		},
		"no steps": func() error {
			_, err := Fit(context.Background(), model, images, labels, Options{LearningRate: 0.1}, r)
			return err
		},
		"unknown architecture": func() error { _, err := New("resnet", r); return err },
	}
	for name, run := range cases {
		if run() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}
