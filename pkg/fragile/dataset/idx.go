package dataset

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// fashionDefaultDir is where the Debian package dataset-fashion-mnist installs its
// files; FRAGILE_FASHION_MNIST_DIR overrides it.
const fashionDefaultDir = "/usr/share/datasets/fashion-mnist"

// Fashion-MNIST's geometry: 28x28 grey-scale images in ten classes.
const (
	fashionRows    = 28
	fashionCols    = 28
	fashionClasses = 10
)

// idxUbyte is the idx type code of unsigned bytes, the only one MNIST-style files use.
const idxUbyte = 0x08

// maxIDXBytes bounds the data an idx header may promise (256 MiB; Fashion-MNIST's
// training images take 47 MB), so a damaged header cannot make us allocate without
// bound.
const maxIDXBytes = 1 << 28

// FashionMNIST loads Fashion-MNIST's 60000 training and 10000 test images, in the
// files' order, with shape {1, 28, 28} and pixel values v/255 for bytes v.
//
// dir holds the four idx files (train-images-idx3-ubyte, train-labels-idx1-ubyte,
// t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte), each gzip-compressed with a .gz
// suffix as Debian ships them, or uncompressed. An empty dir means
// $FRAGILE_FASHION_MNIST_DIR, or /usr/share/datasets/fashion-mnist when that is unset.
// Missing files give an error that says how to install them; a damaged file gives an
// error naming it.
func FashionMNIST(dir string) (train, test *Set, err error) {
	if dir == "" {
		dir = os.Getenv("FRAGILE_FASHION_MNIST_DIR")
	}
	if dir == "" {
		dir = fashionDefaultDir
	}
	train, err = loadFashion(dir, "train")
	if err != nil {
		return nil, nil, err
	}
	test, err = loadFashion(dir, "t10k")
	if err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// loadFashion reads one part (prefix "train" or "t10k") of Fashion-MNIST.
func loadFashion(dir, prefix string) (*Set, error) {
	imgPath, err := findIDX(dir, prefix+"-images-idx3-ubyte")
	if err != nil {
		return nil, err
	}
	lblPath, err := findIDX(dir, prefix+"-labels-idx1-ubyte")
	if err != nil {
		return nil, err
	}
	dims, pixels, err := readIDX(imgPath, 3)
	if err != nil {
		return nil, err
	}
	if dims[1] != fashionRows || dims[2] != fashionCols {
		return nil, fmt.Errorf("dataset: %s: images are %dx%d, Fashion-MNIST's are %dx%d", imgPath, dims[1], dims[2], fashionRows, fashionCols)
	}
	ldims, labels, err := readIDX(lblPath, 1)
	if err != nil {
		return nil, err
	}
	if ldims[0] != dims[0] {
		return nil, fmt.Errorf("dataset: %s holds %d labels but %s holds %d images", lblPath, ldims[0], imgPath, dims[0])
	}
	s := &Set{
		Images:  make([]float32, len(pixels)),
		Labels:  make([]int, len(labels)),
		Shape:   []int{1, fashionRows, fashionCols},
		Classes: fashionClasses,
	}
	for i, l := range labels {
		if int(l) >= fashionClasses {
			return nil, fmt.Errorf("dataset: %s: label %d of example %d is outside 0..%d", lblPath, l, i, fashionClasses-1)
		}
		s.Labels[i] = int(l)
	}
	var scale [256]float32
	for v := range scale {
		scale[v] = float32(v) / 255
	}
	for i, v := range pixels {
		s.Images[i] = scale[v]
	}
	return s, nil
}

// findIDX returns the path of name.gz in dir, or of name when only the uncompressed
// file is there. Neither being there is the "not installed" error.
func findIDX(dir, name string) (string, error) {
	var firstErr error
	for _, p := range []string{filepath.Join(dir, name+".gz"), filepath.Join(dir, name)} {
		_, err := os.Stat(p)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("dataset: Fashion-MNIST file %s: %w", p, err)
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return "", fmt.Errorf("dataset: Fashion-MNIST not found in %s (no %s.gz or %s): apt-get install dataset-fashion-mnist, or run make test: %w",
		dir, name, name, firstErr)
}

// readIDX reads an idx file of unsigned bytes with ndims dimensions, decompressing it
// if its name ends in .gz, and returns the dimensions and the data. Every error names
// the file: a wrong magic number, type or rank, a zero or oversized dimension, data
// shorter or longer than the header promises, and a gzip checksum mismatch.
func readIDX(path string, ndims int) (dims []int, data []byte, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("dataset: %w", err) // names the file
	}
	defer f.Close()
	defer func() {
		if err != nil {
			err = fmt.Errorf("dataset: damaged idx file %s: %w", path, err)
		}
	}()
	var r io.Reader = bufio.NewReaderSize(f, 1<<16)
	if filepath.Ext(path) == ".gz" {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip header: %w", eofIsUnexpected(err))
		}
		defer zr.Close()
		r = zr
	}

	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, nil, fmt.Errorf("magic number: %w", eofIsUnexpected(err))
	}
	if magic[0] != 0 || magic[1] != 0 {
		return nil, nil, fmt.Errorf("magic number %#08x does not start with two zero bytes", binary.BigEndian.Uint32(magic[:]))
	}
	if magic[2] != idxUbyte {
		return nil, nil, fmt.Errorf("data type %#02x, want unsigned byte (%#02x)", magic[2], idxUbyte)
	}
	if int(magic[3]) != ndims {
		return nil, nil, fmt.Errorf("%d dimensions, want %d", magic[3], ndims)
	}
	raw := make([]byte, 4*ndims)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, nil, fmt.Errorf("dimensions: %w", eofIsUnexpected(err))
	}
	dims = make([]int, ndims)
	total := uint64(1)
	for i := range dims {
		d := binary.BigEndian.Uint32(raw[4*i:])
		dims[i] = int(d)
		total *= uint64(d) // at most 2^32 * maxIDXBytes: no overflow
		if d == 0 {
			return nil, nil, fmt.Errorf("dimension %d of %v is zero", i, dims[:i+1])
		}
		if total > maxIDXBytes {
			return nil, nil, fmt.Errorf("dimensions %v promise more than %d data bytes", dims[:i+1], maxIDXBytes)
		}
	}
	data = make([]byte, int(total))
	if n, err := io.ReadFull(r, data); err != nil {
		return nil, nil, fmt.Errorf("truncated: header %v promises %d data bytes, read %d: %w", dims, total, n, eofIsUnexpected(err))
	}
	// Reading to the end checks that nothing follows the data and, for gzip, the
	// checksum, which the gzip reader verifies only when it reaches the end.
	var one [1]byte
	switch n, err := io.ReadFull(r, one[:]); {
	case n > 0:
		return nil, nil, fmt.Errorf("bytes follow the %d data bytes that header %v promises", total, dims)
	case err != io.EOF:
		return nil, nil, err
	}
	return dims, data, nil
}

// eofIsUnexpected turns io.EOF (nothing at all where something must be) into
// io.ErrUnexpectedEOF, so every truncation reads alike.
func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
