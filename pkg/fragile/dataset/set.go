package dataset

import (
	"fmt"
	"math/rand/v2"
)

// Set is a labelled image data set, images back to back (values in [0,1] as loaded;
// Scaled and Normalised map them to a model's input range).
type Set struct {
	// Images holds Len()*Size() values, example i at [i*Size(), (i+1)*Size()).
	Images []float32
	// Labels holds one class index in [0, Classes) per example.
	Labels []int
	// Shape is the shape of one example, e.g. {1, 28, 28} (channels, rows, columns).
	Shape []int
	// Classes is the number of classes.
	Classes int
}

// Len returns the number of examples.
func (s *Set) Len() int { return len(s.Labels) }

// Size returns the number of values per example, the product of Shape.
func (s *Set) Size() int {
	n := 1
	for _, d := range s.Shape {
		n *= d
	}
	return n
}

// Image returns example i. The slice shares storage with s.Images (its capacity ends
// with the example, so appending to it cannot overwrite the next one).
func (s *Set) Image(i int) []float32 {
	if i < 0 || i >= s.Len() {
		panic(fmt.Sprintf("dataset: image index %d out of range [0,%d)", i, s.Len()))
	}
	n := s.Size()
	return s.Images[i*n : (i+1)*n : (i+1)*n]
}

// Subset returns a copy of the examples at idx, in that order. An index may repeat.
// It panics if an index is out of range.
func (s *Set) Subset(idx []int) *Set {
	n := s.Size()
	out := s.empty(len(idx))
	for j, i := range idx {
		if i < 0 || i >= s.Len() {
			panic(fmt.Sprintf("dataset: subset index %d out of range [0,%d)", i, s.Len()))
		}
		copy(out.Images[j*n:(j+1)*n], s.Images[i*n:(i+1)*n])
		out.Labels[j] = s.Labels[i]
	}
	return out
}

// Head returns a copy of the first min(n, Len()) examples. It panics if n < 0.
func (s *Set) Head(n int) *Set {
	if n < 0 {
		panic(fmt.Sprintf("dataset: negative head length %d", n))
	}
	return s.slice(0, min(n, s.Len()))
}

// Split returns copies of the first n examples and of the rest. It panics unless
// 0 <= n <= Len().
func (s *Set) Split(n int) (first, rest *Set) {
	if n < 0 || n > s.Len() {
		panic(fmt.Sprintf("dataset: split point %d out of range [0,%d]", n, s.Len()))
	}
	return s.slice(0, n), s.slice(n, s.Len())
}

// Shuffled returns a copy of s with its examples in the order of r.Perm(Len()), so
// the same source state gives the same order. It panics if r is nil.
func (s *Set) Shuffled(r *rand.Rand) *Set {
	if r == nil {
		panic("dataset: Shuffled needs a *rand.Rand")
	}
	return s.Subset(r.Perm(s.Len()))
}

// Scaled returns a copy of s with every value multiplied by factor (the zoo model
// mnist-7, for instance, takes pixel values 0..255: s.Scaled(255)).
func (s *Set) Scaled(factor float32) *Set {
	out := s.slice(0, s.Len())
	for i := range out.Images {
		out.Images[i] *= factor
	}
	return out
}

// slice returns a copy of examples [from, to).
func (s *Set) slice(from, to int) *Set {
	n := s.Size()
	out := s.empty(to - from)
	copy(out.Images, s.Images[from*n:to*n])
	copy(out.Labels, s.Labels[from:to])
	return out
}

// empty returns a zeroed set of m examples with s's shape and classes.
func (s *Set) empty(m int) *Set {
	return &Set{
		Images:  make([]float32, m*s.Size()),
		Labels:  make([]int, m),
		Shape:   append([]int(nil), s.Shape...),
		Classes: s.Classes,
	}
}
