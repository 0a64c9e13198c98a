package infer

import (
	"math/rand/v2"
	"testing"

	"github.com/fragile-operator/fragile-operator/internal/zoo"
)

// BenchmarkMNIST7 runs 100 examples through a reused runner on one thread and
// reports the bytes each run allocates (none after the first).
func BenchmarkMNIST7(b *testing.B) {
	data, err := zoo.MNIST7()
	if err != nil {
		b.Fatal(err)
	}
	_, prog := compileBytes(b, data)
	r, err := NewRunner[float32](prog, 100, 1)
	if err != nil {
		b.Fatal(err)
	}
	x := uniform(rand.New(rand.NewPCG(1, 1)), 100*prog.InputSize(), 255)
	logits := make([]float64, 100*prog.Classes)
	if err := r.LogitsInto(logits, x); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := r.LogitsInto(logits, x); err != nil {
			b.Fatal(err)
		}
	}
}
