package zoo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// CIFARModel is one of the real CIFAR-10 classifiers of ../shared/realmodels/cifar10,
// trained by other people (the VNN-COMP benchmarks), with the input preprocessing its
// authors applied outside the model.
type CIFARModel struct {
	// Name is the file name without .onnx: <benchmark>__<model>.
	Name string
	// Mean and Std normalise each channel (R, G, B) of pixels in [0,1] as
	// (v - Mean) / Std. Models that take raw [0,1] pixels have mean 0 and std 1.
	Mean, Std [3]float32
	// ChannelsLast marks models that take NHWC input ({32, 32, 3} per example).
	ChannelsLast bool
}

// Normalises reports whether the model expects normalised rather than raw pixels.
func (m CIFARModel) Normalises() bool { return m.Mean != [3]float32{} || m.Std != [3]float32{1, 1, 1} }

// The normalisations of ../shared/realmodels/README.md.
var (
	cifarResnetNorm = CIFARModel{Mean: [3]float32{0.4914, 0.4822, 0.4465}, Std: [3]float32{0.2471, 0.2435, 0.2616}}
	oval21Norm      = CIFARModel{Mean: [3]float32{0.485, 0.456, 0.406}, Std: [3]float32{0.225, 0.225, 0.225}}
	sriNorm         = CIFARModel{Mean: [3]float32{0.4914, 0.4822, 0.4465}, Std: [3]float32{0.2023, 0.1994, 0.2010}}
	// cifar_biasfield documents no normalisation; its README measures a std of about
	// 0.247, the cifar10_resnet statistics.
	biasfieldNorm = cifarResnetNorm
	rawPixels     = CIFARModel{Std: [3]float32{1, 1, 1}, ChannelsLast: true}
)

// CIFARModels lists the eleven real CIFAR-10 classifiers, smallest first within each
// benchmark.
var CIFARModels = []CIFARModel{
	named("cifar10_resnet__resnet_2b", cifarResnetNorm),
	named("cifar10_resnet__resnet_4b", cifarResnetNorm),
	named("oval21__cifar_deep_kw", oval21Norm),
	named("oval21__cifar_base_kw", oval21Norm),
	named("oval21__cifar_wide_kw", oval21Norm),
	named("sri_resnet_a__resnet_3b2_bn_mixup_adv_4.0_bs128_lr-1", sriNorm),
	named("sri_resnet_b__resnet_3b2_bn_mixup_ssadv_4.0_bs128_lr-1_v2", sriNorm),
	named("cifar_biasfield__cifar_base", biasfieldNorm),
	named("marabou-cifar10__cifar10_small", rawPixels),
	named("marabou-cifar10__cifar10_medium", rawPixels),
	named("marabou-cifar10__cifar10_large", rawPixels),
}

func named(name string, norm CIFARModel) CIFARModel {
	norm.Name = name
	return norm
}

// CIFARModelNamed returns the entry of CIFARModels called name.
func CIFARModelNamed(name string) (CIFARModel, error) {
	for _, m := range CIFARModels {
		if m.Name == name {
			return m, nil
		}
	}
	return CIFARModel{}, fmt.Errorf("no real CIFAR-10 model called %q", name)
}

// RealModelsDirEnv overrides where the real models are looked for.
const RealModelsDirEnv = "FRAGILE_REALMODELS_DIR"

// ErrNoRealModels is returned when the real-model folder is absent: it is not part of
// the repository (its models carry no licence), so a clone outside CI has none.
var ErrNoRealModels = errors.New("real CIFAR-10 models absent")

// RealModelsDir returns the folder holding the real CIFAR-10 models and images:
// $FRAGILE_REALMODELS_DIR, else ../shared/realmodels/cifar10 from the repository root
// (root is that root; "" means the working directory). It wraps ErrNoRealModels,
// naming the path, when the folder or its images are missing.
func RealModelsDir(root string) (string, error) {
	dir := os.Getenv(RealModelsDirEnv)
	if dir == "" {
		dir = filepath.Join(root, "..", "shared", "realmodels", "cifar10")
	}
	if _, err := os.Stat(filepath.Join(dir, CIFARImagesFile)); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w: no %s in %s (set %s to the folder)", ErrNoRealModels, CIFARImagesFile, dir, RealModelsDirEnv)
	} else if err != nil {
		return "", err
	}
	return dir, nil
}

// CIFARImagesFile holds the 185 real CIFAR-10 test images in the CIFAR binary layout.
const CIFARImagesFile = "cifar10_from_vnncomp.bin"

// Path returns the model's file in dir.
func (m CIFARModel) Path(dir string) string { return filepath.Join(dir, m.Name+".onnx") }
