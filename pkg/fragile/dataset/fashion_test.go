package dataset_test

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/dataset"
)

// Fashion-MNIST facts, measured on the Debian package's files (and matching the data
// set's paper, Xiao, Rasul and Vollgraf 2017): the mean pixel value is 0.28604 on the
// training set and 0.28685 on the test set; about half the pixels are 0; every class
// has 6000 training and 1000 test images. The first training images are an ankle boot
// (9) and two T-shirts (0), with pixel byte sums 76247 and 84598; the first test
// images are an ankle boot (9) and a pullover (2), with sums 33456 and 100994.
const (
	fashionTrainMean = 0.28604
	fashionTestMean  = 0.28685
	meanTolerance    = 0.0005
)

func TestFashionMNIST(t *testing.T) {
	train, test := fashion(t)
	for _, tc := range []struct {
		name       string
		s          *dataset.Set
		n, each    int
		mean       float64
		firstLabel []int
		firstSums  []float64
	}{
		{"train", train, 60000, 6000, fashionTrainMean, []int{9, 0, 0, 3, 0, 2, 7, 2, 5, 5}, []float64{76247, 84598}},
		{"test", test, 10000, 1000, fashionTestMean, []int{9, 2, 1, 1, 6, 1, 4, 6, 5, 7}, []float64{33456, 100994}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s
			checkGeometry(t, s, tc.n)
			for c, n := range classCounts(t, s) {
				if n != tc.each {
					t.Errorf("class %d has %d examples, want %d", c, n, tc.each)
				}
			}
			st := summarise(s)
			if st.min != 0 || st.max != 1 {
				t.Errorf("values span [%v,%v], want [0,1] with both ends present", st.min, st.max)
			}
			if math.Abs(st.mean-tc.mean) > meanTolerance {
				t.Errorf("mean pixel %.5f, want %.5f±%v", st.mean, tc.mean, meanTolerance)
			}
			if frac := float64(st.zeros) / float64(len(s.Images)); frac < 0.45 || frac > 0.55 {
				t.Errorf("%.3f of the pixels are 0, want about half", frac)
			}
			for i, v := range s.Images {
				if b := v * 255; b != float32(math.Round(float64(b))) || v != float32(math.Round(float64(b)))/255 {
					t.Fatalf("value %d is %v, not a byte divided by 255", i, v)
				}
			}
			if got := s.Labels[:len(tc.firstLabel)]; !slices.Equal(got, tc.firstLabel) {
				t.Errorf("first labels %v, want %v", got, tc.firstLabel)
			}
			for i, want := range tc.firstSums {
				if got := sum255(s, i); math.Abs(got-want) > 0.01 {
					t.Errorf("example %d's pixel bytes sum to %v, want %v", i, got, want)
				}
			}
		})
	}
}

// idxFile is one idx file of a fixture, built field by field so a test can damage it.
type idxFile struct {
	magic []byte // 4 bytes
	dims  []uint32
	data  []byte
	extra []byte // appended after the data
}

func (f idxFile) bytes() []byte {
	var b bytes.Buffer
	b.Write(f.magic)
	for _, d := range f.dims {
		binary.Write(&b, binary.BigEndian, d)
	}
	b.Write(f.data)
	b.Write(f.extra)
	return b.Bytes()
}

func gz(t *testing.T, raw []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// fixture is a small, valid Fashion-MNIST directory: n images per part whose pixel
// bytes are (example + pixel) mod 256, labels example mod 10.
type fixture map[string]idxFile

func newFixture(n int) fixture {
	images := func() idxFile {
		f := idxFile{magic: []byte{0, 0, 8, 3}, dims: []uint32{uint32(n), 28, 28}}
		for i := range n {
			for p := range 784 {
				f.data = append(f.data, byte(i+p))
			}
		}
		return f
	}
	labels := func() idxFile {
		f := idxFile{magic: []byte{0, 0, 8, 1}, dims: []uint32{uint32(n)}}
		for i := range n {
			f.data = append(f.data, byte(i%10))
		}
		return f
	}
	return fixture{
		"train-images-idx3-ubyte": images(), "train-labels-idx1-ubyte": labels(),
		"t10k-images-idx3-ubyte": images(), "t10k-labels-idx1-ubyte": labels(),
	}
}

// write writes the fixture into a new directory, gzip-compressed, and returns it.
func (fx fixture) write(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, f := range fx {
		if err := os.WriteFile(filepath.Join(dir, name+".gz"), gz(t, f.bytes()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestFashionMNISTFixture(t *testing.T) {
	check := func(t *testing.T, dir string) {
		train, test, err := dataset.FashionMNIST(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []*dataset.Set{train, test} {
			checkGeometry(t, s, 3)
			for i := range 3 {
				if s.Labels[i] != i {
					t.Fatalf("label %d is %d", i, s.Labels[i])
				}
				for p, v := range s.Image(i) {
					if want := float32(byte(i+p)) / 255; v != want {
						t.Fatalf("example %d pixel %d is %v, want %v", i, p, v, want)
					}
				}
			}
		}
	}
	t.Run("gzip", func(t *testing.T) { check(t, newFixture(3).write(t)) })
	t.Run("uncompressed", func(t *testing.T) {
		dir := t.TempDir()
		for name, f := range newFixture(3) {
			if err := os.WriteFile(filepath.Join(dir, name), f.bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		check(t, dir)
	})
	t.Run("environment", func(t *testing.T) {
		t.Setenv("FRAGILE_FASHION_MNIST_DIR", newFixture(3).write(t))
		check(t, "")
	})
}

func TestFashionMNISTMissing(t *testing.T) {
	empty := t.TempDir()
	partial := newFixture(2).write(t)
	if err := os.Remove(filepath.Join(partial, "t10k-labels-idx1-ubyte.gz")); err != nil {
		t.Fatal(err)
	}
	envDir := filepath.Join(t.TempDir(), "nowhere")
	for name, tc := range map[string]struct{ dir, env, file string }{
		"empty directory":   {dir: empty, file: "train-images-idx3-ubyte"},
		"no such directory": {dir: filepath.Join(empty, "nowhere")},
		"one file missing":  {dir: partial, file: "t10k-labels-idx1-ubyte"},
		"environment":       {env: envDir},
	} {
		t.Run(name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("FRAGILE_FASHION_MNIST_DIR", tc.env)
			}
			_, _, err := dataset.FashionMNIST(tc.dir)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, want := range []string{"Fashion-MNIST not found in " + tc.dir + tc.env, "apt-get install dataset-fashion-mnist", "make test", tc.file} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not mention %q", msg, want)
				}
			}
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("error %q does not wrap fs.ErrNotExist", msg)
			}
		})
	}
}

func TestFashionMNISTDamaged(t *testing.T) {
	const (
		images = "train-images-idx3-ubyte"
		labels = "t10k-labels-idx1-ubyte"
	)
	type damage struct {
		file string
		edit func(*idxFile)                      // damages the idx bytes before compression
		gz   func(t *testing.T, b []byte) []byte // damages the compressed bytes
		want string
	}
	cases := map[string]damage{
		"empty file":     {file: images, gz: func(*testing.T, []byte) []byte { return nil }, want: "gzip header"},
		"not gzip":       {file: images, gz: func(t *testing.T, b []byte) []byte { return []byte("hello, this is not gzip") }, want: "gzip header"},
		"truncated gzip": {file: images, gz: func(t *testing.T, b []byte) []byte { return b[:len(b)/2] }, want: "unexpected EOF"},
		"gzip checksum": {file: images, gz: func(t *testing.T, b []byte) []byte {
			b = slices.Clone(b)
			b[len(b)-8] ^= 0xff // CRC-32 of the uncompressed data
			return b
		}, want: "checksum"},
		"gzip trailing garbage": {file: images, gz: func(t *testing.T, b []byte) []byte { return append(slices.Clone(b), "garbage!!"...) }, want: "gzip"},
		"short magic":           {file: images, edit: func(f *idxFile) { f.magic, f.dims, f.data = []byte{0, 0}, nil, nil }, want: "magic number: unexpected EOF"},
		"bad magic":             {file: images, edit: func(f *idxFile) { f.magic = []byte{0x1f, 0x8b, 8, 3} }, want: "two zero bytes"},
		"int data type":         {file: images, edit: func(f *idxFile) { f.magic = []byte{0, 0, 0x0c, 3} }, want: "data type 0x0c"},
		"labels as images":      {file: images, edit: func(f *idxFile) { f.magic = []byte{0, 0, 8, 1} }, want: "1 dimensions, want 3"},
		"short dimensions":      {file: images, edit: func(f *idxFile) { f.dims, f.data = f.dims[:2], nil }, want: "dimensions: unexpected EOF"},
		"zero images":           {file: images, edit: func(f *idxFile) { f.dims[0], f.data = 0, nil }, want: "is zero"},
		"huge header":           {file: images, edit: func(f *idxFile) { f.dims[0] = 1 << 31 }, want: "promise more than"},
		"truncated data":        {file: images, edit: func(f *idxFile) { f.data = f.data[:len(f.data)-1] }, want: "truncated"},
		"trailing data":         {file: images, edit: func(f *idxFile) { f.extra = []byte{1, 2, 3} }, want: "bytes follow"},
		"wrong size": {file: images, edit: func(f *idxFile) {
			f.dims, f.data = []uint32{3, 27, 28}, f.data[:3*27*28]
		}, want: "images are 27x28"},
		"label out of range": {file: labels, edit: func(f *idxFile) { f.data[1] = 10 }, want: "label 10 of example 1"},
		"label count":        {file: labels, edit: func(f *idxFile) { f.dims[0], f.data = 2, f.data[:2] }, want: "holds 2 labels"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			fx := newFixture(3)
			f := fx[tc.file]
			f.dims = slices.Clone(f.dims)
			if tc.edit != nil {
				tc.edit(&f)
			}
			fx[tc.file] = f
			dir := fx.write(t)
			path := filepath.Join(dir, tc.file+".gz")
			if tc.gz != nil {
				if err := os.WriteFile(path, tc.gz(t, gz(t, f.bytes())), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			train, test, err := dataset.FashionMNIST(dir)
			if err == nil {
				t.Fatalf("no error; loaded %d and %d examples", train.Len(), test.Len())
			}
			if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not name %s and say %q", msg, path, tc.want)
			}
			t.Log(err)
		})
	}
}
