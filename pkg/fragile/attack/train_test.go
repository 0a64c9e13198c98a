package attack

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/train"
)

func TestFlipLabelsChangesExactlyTheFraction(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	labels := make([]int, 1000)
	for i := range labels {
		labels[i] = r.IntN(10)
	}
	flipped := flipLabels(labels, 0.1, 10, r)
	changed := 0
	for i := range labels {
		if flipped[i] < 0 || flipped[i] >= 10 {
			t.Fatalf("label %d out of range", flipped[i])
		}
		if flipped[i] != labels[i] {
			changed++
		}
	}
	if changed != 100 {
		t.Errorf("changed %d of 1000 labels, want 100", changed)
	}
}

func TestStampWritesTheBottomRightPatch(t *testing.T) {
	o := BackdoorOptions{Patch: 3, Value: 9, Width: 5}
	img := make([]float32, 2*25) // two channels
	o.Stamp(img)
	for c := 0; c < 2; c++ {
		for y := 0; y < 5; y++ {
			for x := 0; x < 5; x++ {
				want := float32(0)
				if y >= 2 && x >= 2 {
					want = 9
				}
				if got := img[c*25+y*5+x]; got != want {
					t.Errorf("channel %d pixel (%d,%d) = %g, want %g", c, y, x, got, want)
				}
			}
		}
	}
}

// TestBackdoorTeachesThePatch trains a backdoor into an MLP on a synthetic task and
// checks that patched images go to the target class far more often afterwards.
func TestBackdoorTeachesThePatch(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	n := 800
	data := Data{Images: make([]float32, n*784), Labels: make([]int, n), Size: 784, Classes: 10}
	for i := range data.Labels {
		data.Labels[i] = r.IntN(10)
		for p := 0; p < 784; p++ {
			data.Images[i*784+p] = float32(0.2 * r.Float64())
		}
		for x := 0; x < 28; x++ { // class = brightest row band
			data.Images[i*784+data.Labels[i]*2*28+x] += 0.8
		}
	}
	model, err := train.New("mlp", rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	bo := BackdoorOptions{Patch: 3, Value: 1, Target: 7, Fraction: 0.2, Width: 28}
	attackSuccess := func(m []byte) float64 {
		patched := append([]float32(nil), data.Images[:200*784]...)
		for i := 0; i < 200; i++ {
			bo.Stamp(patched[i*784 : (i+1)*784])
		}
		target := make([]int, 200)
		for i := range target {
			target[i] = bo.Target
		}
		acc, err := train.Accuracy(m, patched, target)
		if err != nil {
			t.Fatal(err)
		}
		return acc
	}
	before := attackSuccess(model)
	attacked, err := Backdoor(context.Background(), model, data, bo, train.Options{Steps: 300, BatchSize: 32, LearningRate: 0.02}, r)
	if err != nil {
		t.Fatal(err)
	}
	after := attackSuccess(attacked)
	if after < 0.8 || after < before+0.5 {
		t.Errorf("patched images labelled as the target: %.2f before, %.2f after the backdoor; want >= 0.8", before, after)
	}
	// Same graph, new weights.
	m, _ := onnx.Decode(attacked)
	if _, err := nn.Compile(m); err != nil {
		t.Fatal(err)
	}
}

// TestFineTuneLastLayerTrainsOnlyTheLastLayer fine-tunes LeNet-5's last layer on a
// synthetic task: fc3's weight and bias change, every other tensor keeps every bit,
// and the accuracy on the task rises (the step did something useful).
func TestFineTuneLastLayerTrainsOnlyTheLastLayer(t *testing.T) {
	model := onnx.Encode(train.LeNet5(rand.New(rand.NewPCG(31, 32))))
	m, err := onnx.Decode(model)
	if err != nil {
		t.Fatal(err)
	}
	last := LastLayer(m)
	if !slices.Equal(last, []string{"fc3.weight", "fc3.bias"}) {
		t.Fatalf("last layer %v, want [fc3.weight fc3.bias]", last)
	}
	r := rand.New(rand.NewPCG(33, 34))
	n := 256
	data := Data{Images: make([]float32, n*784), Labels: make([]int, n), Size: 784, Classes: 10}
	for i := range data.Labels {
		data.Labels[i] = r.IntN(10)
		for x := 0; x < 28; x++ { // class = bright row band
			data.Images[i*784+data.Labels[i]*2*28+x] = 1
		}
	}
	before, err := train.Accuracy(model, data.Images, data.Labels)
	if err != nil {
		t.Fatal(err)
	}
	tuned, err := FineTuneLastLayer(context.Background(), model, data, train.Options{Steps: 30, LearningRate: 1e-2, Optimizer: train.Adam}, r)
	if err != nil {
		t.Fatal(err)
	}
	after, err := train.Accuracy(tuned, data.Images, data.Labels)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("accuracy %.3f before, %.3f after 30 last-layer steps", before, after)
	if after < before+0.2 {
		t.Errorf("accuracy %.3f before, %.3f after: last-layer training did not learn", before, after)
	}
	tm, err := onnx.Decode(tuned)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range m.Graph.Initializers {
		changed := !slices.Equal(w.Float, tm.Graph.Initializer(w.Name).Float)
		if want := slices.Contains(last, w.Name); changed != want {
			t.Errorf("%s: changed %v, want %v", w.Name, changed, want)
		}
	}
}

func TestTrainOnlyRejectsUnknownWeights(t *testing.T) {
	model := onnx.Encode(train.MLP(rand.New(rand.NewPCG(35, 36))))
	data := Data{Images: make([]float32, 2*784), Labels: []int{0, 1}, Size: 784, Classes: 10}
	_, err := FineTune(context.Background(), model, data, train.Options{Steps: 1, LearningRate: 1e-3, Only: []string{"no.such.weight"}}, rand.New(rand.NewPCG(1, 1)))
	if err == nil || !strings.Contains(err.Error(), "no.such.weight") {
		t.Errorf("training a missing weight: %v, want an error naming it", err)
	}
}
