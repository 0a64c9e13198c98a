package fragile

import (
	"bytes"
	"crypto/sha256"
	"math"
	"math/rand/v2"
	"testing"
)

// FuzzDecodeBundle feeds arbitrary plaintext to the bundle decoder, the code that
// runs after authentication (so only a key holder can reach it, but a bug in the
// encoder or a future format change could). It must never panic or allocate beyond
// what the data can fill, and the format has no optional parts: whatever decodes
// re-encodes to the same bytes.
func FuzzDecodeBundle(f *testing.F) {
	r := rand.New(rand.NewPCG(41, 42))
	for _, n := range []int{1, 3, 20} {
		b := &Bundle{
			Method: MethodPaper, ModelDigest: sha256.Sum256([]byte{byte(n)}), InputName: "Input3",
			InputShape: []int{1, 28, 28}, InputMin: 0, InputMax: 255, Classes: 10,
			Steps: 17, Lambda: 10, FinalLoss: math.Pi,
		}
		for i := 0; i < n; i++ {
			b.KeyLabels = append(b.KeyLabels, r.IntN(10))
			b.Margins = append(b.Margins, float32(r.Float64()))
			for j := 0; j < 784; j++ {
				b.Triggers = append(b.Triggers, float32(255*r.Float64()))
			}
		}
		plain, err := b.encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(plain)
		f.Add(plain[:len(plain)/2])
		if n == 1 {
			f.Add(plain[:len(plain)-1])
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := decodeBundle(data, bundleVersion)
		if err != nil {
			if b != nil {
				t.Fatal("bundle and error both returned")
			}
			return
		}
		if len(b.Triggers) != b.Len()*b.InputSize() || len(b.Margins) != b.Len() {
			t.Fatalf("decoded %d labels, %d trigger values of size %d, %d margins", b.Len(), len(b.Triggers), b.InputSize(), len(b.Margins))
		}
		for _, l := range b.KeyLabels {
			if l < 0 || l >= b.Classes {
				t.Fatalf("label %d of %d classes", l, b.Classes)
			}
		}
		again, err := b.encode()
		if err != nil {
			// encode refuses a method name over 255 bytes that decode reads; Seal never
			// writes one, so that alone is not a failure.
			if len(b.Method) > 255 {
				return
			}
			t.Fatalf("decoded bundle does not encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatal("decode then encode changed the bytes")
		}
	})
}
