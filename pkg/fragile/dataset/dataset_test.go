package dataset_test

import (
	"math"
	"sync"
	"testing"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/dataset"
)

// The real data sets are loaded once per test binary; tests must not modify them.
// They come from the directories in FRAGILE_FASHION_MNIST_DIR and FRAGILE_MNIST_DIR
// (hack/test.sh installs both and sets them) or the loaders' defaults. Missing data
// fails the tests with the loaders' install instructions: CI must never skip them.
var (
	fashionOnce  sync.Once
	fashionTrain *dataset.Set
	fashionTest  *dataset.Set
	fashionErr   error
	digitsOnce   sync.Once
	digitsSet    *dataset.Set
	digitsErr    error
)

func fashion(tb testing.TB) (train, test *dataset.Set) {
	tb.Helper()
	fashionOnce.Do(func() { fashionTrain, fashionTest, fashionErr = dataset.FashionMNIST("") })
	if fashionErr != nil {
		tb.Fatal(fashionErr)
	}
	return fashionTrain, fashionTest
}

func digits(tb testing.TB) *dataset.Set {
	tb.Helper()
	digitsOnce.Do(func() { digitsSet, digitsErr = dataset.MNISTDigits("") })
	if digitsErr != nil {
		tb.Fatal(digitsErr)
	}
	return digitsSet
}

// stats summarises a set's values.
type stats struct {
	min, max, mean float64
	zeros          int
}

func summarise(s *dataset.Set) stats {
	st := stats{min: math.Inf(1), max: math.Inf(-1)}
	var sum float64
	for _, v := range s.Images {
		x := float64(v)
		st.min = min(st.min, x)
		st.max = max(st.max, x)
		sum += x
		if v == 0 {
			st.zeros++
		}
	}
	st.mean = sum / float64(len(s.Images))
	return st
}

// classCounts counts the examples of each class, failing on a label out of range.
func classCounts(t *testing.T, s *dataset.Set) []int {
	t.Helper()
	counts := make([]int, s.Classes)
	for i, l := range s.Labels {
		if l < 0 || l >= s.Classes {
			t.Fatalf("label %d of example %d is outside 0..%d", l, i, s.Classes-1)
		}
		counts[l]++
	}
	return counts
}

// checkGeometry checks the fields every loaded 28x28 ten-class set shares.
func checkGeometry(t *testing.T, s *dataset.Set, n int) {
	t.Helper()
	if s.Len() != n {
		t.Fatalf("%d examples, want %d", s.Len(), n)
	}
	if len(s.Shape) != 3 || s.Shape[0] != 1 || s.Shape[1] != 28 || s.Shape[2] != 28 || s.Size() != 784 {
		t.Fatalf("shape %v size %d, want [1 28 28] 784", s.Shape, s.Size())
	}
	if s.Classes != 10 {
		t.Fatalf("%d classes, want 10", s.Classes)
	}
	if len(s.Images) != n*784 {
		t.Fatalf("%d values, want %d", len(s.Images), n*784)
	}
}

// sum255 returns the sum of example i's values times 255, the sum of its pixel bytes.
func sum255(s *dataset.Set, i int) float64 {
	var sum float64
	for _, v := range s.Image(i) {
		sum += float64(v) * 255
	}
	return sum
}

func BenchmarkFashionMNIST(b *testing.B) {
	for b.Loop() {
		if _, _, err := dataset.FashionMNIST(""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMNISTDigits(b *testing.B) {
	for b.Loop() {
		if _, err := dataset.MNISTDigits(""); err != nil {
			b.Fatal(err)
		}
	}
}
