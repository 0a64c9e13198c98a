package dataset_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/dataset"
)

// numbered returns a set of n 1x2x2 examples whose values all equal 0.01*i for
// example i, labelled i%3, so every copy can be traced back to its source.
func numbered(n int) *dataset.Set {
	s := &dataset.Set{Shape: []int{1, 2, 2}, Classes: 3}
	for i := range n {
		for range 4 {
			s.Images = append(s.Images, 0.01*float32(i))
		}
		s.Labels = append(s.Labels, i%3)
	}
	return s
}

// source returns the example index of s's example j in a numbered set.
func source(t *testing.T, s *dataset.Set, j int) int {
	t.Helper()
	img := s.Image(j)
	i := int(img[0]*100 + 0.5)
	for _, v := range img {
		if v != img[0] {
			t.Fatalf("example %d mixes values of different sources: %v", j, img)
		}
	}
	if s.Labels[j] != i%3 {
		t.Fatalf("example %d comes from %d but has label %d, want %d", j, i, s.Labels[j], i%3)
	}
	return i
}

// sources returns the source index of every example of s.
func sources(t *testing.T, s *dataset.Set) []int {
	t.Helper()
	out := make([]int, s.Len())
	for j := range out {
		out[j] = source(t, s, j)
	}
	return out
}

// checkCopy fails if derived shares storage with s or lost its shape or classes.
func checkCopy(t *testing.T, s, derived *dataset.Set) {
	t.Helper()
	if !slices.Equal(derived.Shape, s.Shape) || derived.Classes != s.Classes {
		t.Fatalf("shape %v classes %d, want %v %d", derived.Shape, derived.Classes, s.Shape, s.Classes)
	}
	if len(derived.Images) != derived.Len()*derived.Size() {
		t.Fatalf("%d values for %d examples of size %d", len(derived.Images), derived.Len(), derived.Size())
	}
	if derived.Len() == 0 {
		return
	}
	before := slices.Clone(s.Images)
	beforeLabels := slices.Clone(s.Labels)
	beforeShape := slices.Clone(s.Shape)
	for i := range derived.Images {
		derived.Images[i] = -1
	}
	for i := range derived.Labels {
		derived.Labels[i] = -1
	}
	derived.Shape[0] = 99
	if !slices.Equal(s.Images, before) || !slices.Equal(s.Labels, beforeLabels) || !slices.Equal(s.Shape, beforeShape) {
		t.Fatal("writing to the derived set changed the original")
	}
}

func TestSetBasics(t *testing.T) {
	s := numbered(5)
	if s.Len() != 5 || s.Size() != 4 {
		t.Fatalf("Len %d Size %d, want 5 4", s.Len(), s.Size())
	}
	if got := sources(t, s); !slices.Equal(got, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("sources %v", got)
	}
	img := s.Image(1)
	if cap(img) != 4 {
		t.Fatalf("Image's capacity %d reaches past the example", cap(img))
	}
	_ = append(img, 42)
	if s.Images[8] != 0.02 {
		t.Fatal("appending to Image(1) overwrote Image(2)")
	}
}

func TestSubset(t *testing.T) {
	s := numbered(6)
	idx := []int{4, 0, 4, 5}
	sub := s.Subset(idx)
	if got := sources(t, sub); !slices.Equal(got, idx) {
		t.Fatalf("Subset(%v) holds %v", idx, got)
	}
	checkCopy(t, s, sub)
	if empty := s.Subset(nil); empty.Len() != 0 || len(empty.Images) != 0 {
		t.Fatalf("Subset(nil) has %d examples", empty.Len())
	}
}

func TestHead(t *testing.T) {
	s := numbered(6)
	for _, tc := range []struct{ n, want int }{{0, 0}, {3, 3}, {6, 6}, {100, 6}} {
		h := s.Head(tc.n)
		want := make([]int, tc.want)
		for i := range want {
			want[i] = i
		}
		if got := sources(t, h); !slices.Equal(got, want) {
			t.Errorf("Head(%d) holds %v, want %v", tc.n, got, want)
		}
		checkCopy(t, s, h)
	}
}

func TestSplit(t *testing.T) {
	s := numbered(7)
	for n := range s.Len() + 1 {
		first, rest := s.Split(n)
		got := append(sources(t, first), sources(t, rest)...)
		if first.Len() != n || !slices.Equal(got, sources(t, s)) {
			t.Fatalf("Split(%d) gave %d + %d examples, %v", n, first.Len(), rest.Len(), got)
		}
		checkCopy(t, s, first)
		checkCopy(t, s, rest)
	}
}

func TestShuffled(t *testing.T) {
	s := numbered(50)
	a := s.Shuffled(rand.New(rand.NewPCG(1, 2)))
	b := s.Shuffled(rand.New(rand.NewPCG(1, 2)))
	c := s.Shuffled(rand.New(rand.NewPCG(3, 4)))
	pa, pb, pc := sources(t, a), sources(t, b), sources(t, c)
	if !slices.Equal(pa, pb) {
		t.Fatal("the same seed gave different orders")
	}
	if slices.Equal(pa, pc) {
		t.Fatal("different seeds gave the same order of 50 examples")
	}
	if slices.Equal(pa, sources(t, s)) {
		t.Fatal("Shuffled kept the original order of 50 examples")
	}
	for _, p := range [][]int{pa, pc} {
		sorted := slices.Sorted(slices.Values(p))
		if !slices.Equal(sorted, sources(t, s)) {
			t.Fatalf("shuffled order %v is not a permutation", p)
		}
	}
	checkCopy(t, s, a)
}

func TestScaled(t *testing.T) {
	s := numbered(4)
	sc := s.Scaled(255)
	for i, v := range sc.Images {
		if want := s.Images[i] * 255; v != want {
			t.Fatalf("value %d is %v, want %v", i, v, want)
		}
	}
	if !slices.Equal(sc.Labels, s.Labels) {
		t.Fatalf("labels %v, want %v", sc.Labels, s.Labels)
	}
	checkCopy(t, s, sc)
}

func TestSetPanics(t *testing.T) {
	s := numbered(3)
	for name, f := range map[string]func(){
		"Image(-1)":     func() { s.Image(-1) },
		"Image(3)":      func() { s.Image(3) },
		"Subset(3)":     func() { s.Subset([]int{0, 3}) },
		"Head(-1)":      func() { s.Head(-1) },
		"Split(4)":      func() { s.Split(4) },
		"Split(-1)":     func() { s.Split(-1) },
		"Shuffled(nil)": func() { s.Shuffled(nil) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f()
		})
	}
}
