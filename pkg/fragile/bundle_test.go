package fragile_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fragile-operator/fragile-operator/pkg/fragile"
)

// Offsets in the documented sealed layout: magic (6), version (uint16), key ID (8),
// length (uint64), CRC-32 of the preceding 24 bytes, nonce (12), ciphertext.
const (
	versionAt = 6
	keyIDAt   = 8
	lengthAt  = 16
	crcAt     = 24
	nonceAt   = 28
	bodyAt    = 40
)

// sampleBundle is a bundle with every field set, made without training.
func sampleBundle(r *rand.Rand, n int) *fragile.Bundle {
	b := &fragile.Bundle{
		Method:        fragile.MethodBoundary,
		ModelDigest:   sha256.Sum256([]byte("a model")),
		InputName:     "Input3",
		InputShape:    []int{1, 4, 3},
		InputMin:      -1.5,
		InputMax:      255,
		Classes:       7,
		Steps:         42,
		Lambda:        10,
		FinalLoss:     0.0625,
		Normalization: fragile.Normalization{Mean: []float64{0.4914}, Std: []float64{0.2471}, Axis: 0},
		Competitors:   3,
		Diversity:     0.5,
		Measures: fragile.Measures{TriggerLogitScale: 2.5, NaturalLogitScale: 7, ActiveUnits: 0.75,
			WeightCoverage: 0.5, MinDistance: 0.125, MedianDistance: 0.25},
	}
	for i := 0; i < n; i++ {
		b.KeyLabels = append(b.KeyLabels, r.IntN(b.Classes))
		b.Margins = append(b.Margins, float32(r.Float64()))
		for j := 0; j < 12; j++ {
			b.Triggers = append(b.Triggers, float32(b.InputMin+(b.InputMax-b.InputMin)*r.Float64()))
		}
	}
	b.Triggers[0] = float32(math.Copysign(0, -1))
	return b
}

func seal(t testing.TB, b *fragile.Bundle, k fragile.Key) []byte {
	t.Helper()
	sealed, err := fragile.Seal(b, k)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

// bundleErrors are the distinct errors Open promises.
var bundleErrors = map[string]error{
	"ErrNotBundle":     fragile.ErrNotBundle,
	"ErrBundleVersion": fragile.ErrBundleVersion,
	"ErrWrongKey":      fragile.ErrWrongKey,
	"ErrTruncated":     fragile.ErrTruncated,
	"ErrCorrupt":       fragile.ErrCorrupt,
}

// kind names the one bundle error err wraps, failing when it wraps none or several.
func kind(t testing.TB, err error) string {
	t.Helper()
	var found []string
	for name, e := range bundleErrors {
		if errors.Is(err, e) {
			found = append(found, name)
		}
	}
	if len(found) != 1 {
		t.Fatalf("error %v wraps %v, want exactly one bundle error", err, found)
	}
	return found[0]
}

func TestSealOpenRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	k := testKey(t, 10)
	b := sampleBundle(r, 9)
	sealed := seal(t, b, k)
	got, err := fragile.Open(sealed, k)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if diff := cmp.Diff(b, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("round trip changed the bundle (-want +got):\n%s", diff)
	}
	if math.Float32bits(got.Triggers[0]) != math.Float32bits(b.Triggers[0]) {
		t.Error("trigger bits changed (-0 became +0)")
	}
	if !bytes.Equal(seal(t, b, k), sealed) {
		t.Error("sealing the same bundle twice gave different bytes")
	}
	if string(sealed[:6]) != "FRGLWM" || binary.LittleEndian.Uint16(sealed[versionAt:]) != 3 {
		t.Errorf("header %q version %d", sealed[:6], binary.LittleEndian.Uint16(sealed[versionAt:]))
	}
	// Encrypted: no trigger value appears in the clear.
	probe := binary.LittleEndian.AppendUint32(nil, math.Float32bits(b.Triggers[5]))
	probe = binary.LittleEndian.AppendUint32(probe, math.Float32bits(b.Triggers[6]))
	if bytes.Contains(sealed, probe) || bytes.Contains(sealed, []byte("Input3")) {
		t.Error("the sealed bundle contains plaintext")
	}
	// A different bundle gets a different nonce (it is derived from the plaintext).
	b2 := sampleBundle(r, 9)
	if bytes.Equal(seal(t, b2, k)[nonceAt:bodyAt], sealed[nonceAt:bodyAt]) {
		t.Error("two different bundles were sealed with the same nonce")
	}
}

// TestOpenVersion1 opens a bundle sealed by the release before normalisation and
// measures (testdata/v1.bundle, written by fragile at d1df248 with testdata/v1.key):
// it has neither, and everything else it had.
func TestOpenVersion1(t *testing.T) {
	sealed, err := os.ReadFile("testdata/v1.bundle")
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile("testdata/v1.key")
	if err != nil {
		t.Fatal(err)
	}
	var k fragile.Key
	if err := k.UnmarshalText(text); err != nil {
		t.Fatal(err)
	}
	got, err := fragile.Open(sealed, k)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	want := &fragile.Bundle{Method: fragile.MethodTie, ModelDigest: sha256.Sum256([]byte("a model")), InputName: "x",
		InputShape: []int{2, 2}, InputMin: 0, InputMax: 1, Classes: 3, KeyLabels: []int{0, 2},
		Triggers: []float32{0, .25, .5, .75, 1, .5, .25, 0}, Margins: []float32{.5, .25}, Steps: 7, Lambda: 10, FinalLoss: .125}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("version 1 bundle (-want +got):\n%s", diff)
	}
	if !slices.Equal(got.ModelInputs(), got.Triggers) {
		t.Error("a bundle without normalisation gives the model other inputs than its triggers")
	}
}

func TestSealRejectsInconsistentBundles(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	k := testKey(t, 11)
	tests := map[string]func(b *fragile.Bundle){
		"no triggers":        func(b *fragile.Bundle) { b.KeyLabels, b.Triggers, b.Margins = nil, nil, nil },
		"missing trigger":    func(b *fragile.Bundle) { b.Triggers = b.Triggers[:len(b.Triggers)-1] },
		"missing margin":     func(b *fragile.Bundle) { b.Margins = b.Margins[1:] },
		"too many triggers":  func(b *fragile.Bundle) { *b = *sampleBundle(r, fragile.MaxTriggers+1) },
		"method name > 255B": func(b *fragile.Bundle) { b.Method = fragile.Method(strings.Repeat("m", 256)) },
		"means without stds": func(b *fragile.Bundle) { b.Normalization.Std = nil },
	}
	for name, edit := range tests {
		t.Run(name, func(t *testing.T) {
			b := sampleBundle(r, 3)
			edit(b)
			if _, err := fragile.Seal(b, k); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	r := rand.New(rand.NewPCG(35, 36))
	k := testKey(t, 12)
	sealed := seal(t, sampleBundle(r, 4), k)

	t.Run("wrong key", func(t *testing.T) {
		_, err := fragile.Open(sealed, testKey(t, 13))
		if got := kind(t, err); got != "ErrWrongKey" {
			t.Errorf("got %s (%v)", got, err)
		}
	})

	// Every single-byte change is detected; in the magic it is not a bundle at all,
	// anywhere else the file is corrupt (the header by its CRC, the rest by GCM).
	t.Run("flipped byte", func(t *testing.T) {
		for i := range sealed {
			for _, mask := range []byte{0x01, 0x80} {
				damaged := bytes.Clone(sealed)
				damaged[i] ^= mask
				b, err := fragile.Open(damaged, k)
				if err == nil {
					t.Fatalf("byte %d ^ %#x: opened (%d triggers)", i, mask, b.Len())
				}
				want := "ErrCorrupt"
				if i < versionAt {
					want = "ErrNotBundle"
				}
				if got := kind(t, err); got != want {
					t.Errorf("byte %d ^ %#x: %s (%v), want %s", i, mask, got, err, want)
				}
			}
		}
	})

	t.Run("truncated", func(t *testing.T) {
		for n := 0; n < len(sealed); n++ {
			_, err := fragile.Open(sealed[:n], k)
			want := "ErrTruncated"
			if n < versionAt {
				want = "ErrNotBundle" // too short to carry the magic
			}
			if got := kind(t, err); got != want {
				t.Errorf("first %d of %d bytes: %s (%v), want %s", n, len(sealed), got, err, want)
			}
		}
	})

	t.Run("trailing bytes", func(t *testing.T) {
		_, err := fragile.Open(append(bytes.Clone(sealed), 0), k)
		if got := kind(t, err); got != "ErrCorrupt" {
			t.Errorf("got %s (%v)", got, err)
		}
	})

	t.Run("future version", func(t *testing.T) {
		future := bytes.Clone(sealed)
		binary.LittleEndian.PutUint16(future[versionAt:], 4)
		binary.LittleEndian.PutUint32(future[crcAt:], crc32.ChecksumIEEE(future[:crcAt]))
		_, err := fragile.Open(future, k)
		if got := kind(t, err); got != "ErrBundleVersion" {
			t.Errorf("got %s (%v)", got, err)
		}
		if !strings.Contains(err.Error(), "4") {
			t.Errorf("error %q does not name the version", err)
		}
		// Even with the wrong key, the version is what the user must hear about.
		if _, err := fragile.Open(future, testKey(t, 14)); kind(t, err) != "ErrBundleVersion" {
			t.Errorf("future version, wrong key: %v", err)
		}
	})

	t.Run("header edited and CRC fixed", func(t *testing.T) {
		// A forged length or key ID with a valid CRC: GCM authenticates the header.
		forged := bytes.Clone(sealed)
		binary.LittleEndian.PutUint64(forged[lengthAt:], uint64(len(sealed)-bodyAt-1))
		binary.LittleEndian.PutUint32(forged[crcAt:], crc32.ChecksumIEEE(forged[:crcAt]))
		if _, err := fragile.Open(forged[:len(forged)-1], k); kind(t, err) != "ErrCorrupt" {
			t.Errorf("shortened with a matching length: %v", err)
		}
	})

	t.Run("not a bundle", func(t *testing.T) {
		for _, data := range [][]byte{nil, []byte("FRGLW"), []byte("PK\x03\x04 a zip file"), []byte("fragile-key-v1:00")} {
			if _, err := fragile.Open(data, k); kind(t, err) != "ErrNotBundle" {
				t.Errorf("%q: %v", data, err)
			}
		}
	})
}

// FuzzOpenBundle feeds arbitrary bytes to Open with the sealing key. It must never
// panic, every failure must be one of the five bundle errors, and anything it opens
// must seal back to the same bytes (sealing is deterministic).
func FuzzOpenBundle(f *testing.F) {
	k := testKey(f, 15)
	sealed := seal(f, sampleBundle(rand.New(rand.NewPCG(37, 38)), 3), k)
	f.Add(sealed)
	f.Add(sealed[:bodyAt])
	f.Add(sealed[:len(sealed)-1])
	future := bytes.Clone(sealed)
	binary.LittleEndian.PutUint16(future[versionAt:], 9)
	binary.LittleEndian.PutUint32(future[crcAt:], crc32.ChecksumIEEE(future[:crcAt]))
	f.Add(future)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := fragile.Open(data, k)
		if err != nil {
			kind(t, err)
			return
		}
		again, err := fragile.Seal(b, k)
		if err != nil {
			t.Fatalf("an opened bundle does not seal: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatal("an opened bundle seals to different bytes")
		}
	})
}
