package fragile_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/fragile-operator/fragile-operator/pkg/fragile"
)

// testKey draws a key from a seeded ChaCha8 stream: reproducible, unlike crypto/rand.
func testKey(t testing.TB, seed byte) fragile.Key {
	t.Helper()
	var s [32]byte
	s[0] = seed
	k, err := fragile.NewKey(rand.NewChaCha8(s))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyText(t *testing.T) {
	k := testKey(t, 1)
	text, err := k.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	if want := "fragile-key-v1:" + hex.EncodeToString(k[:]); string(text) != want {
		t.Errorf("MarshalText = %q, want %q", text, want)
	}
	for _, wrap := range []string{"%s", "%s\n", "  %s \r\n", "\t%s"} {
		var got fragile.Key
		if err := got.UnmarshalText([]byte(fmt.Sprintf(wrap, text))); err != nil {
			t.Errorf("UnmarshalText(%q): %v", fmt.Sprintf(wrap, text), err)
		}
		if got != k {
			t.Errorf("round trip through %q changed the key", wrap)
		}
	}
	hexKey := hex.EncodeToString(k[:])
	bad := map[string]string{
		"empty":          "",
		"no prefix":      hexKey,
		"other version":  "fragile-key-v2:" + hexKey,
		"short":          "fragile-key-v1:" + hexKey[:62],
		"long":           "fragile-key-v1:" + hexKey + "00",
		"odd length":     "fragile-key-v1:" + hexKey[:63],
		"not hex":        "fragile-key-v1:" + strings.Repeat("zz", 32),
		"inner space":    "fragile-key-v1:" + hexKey[:10] + " " + hexKey[10:],
		"prefix only":    "fragile-key-v1:",
		"another format": "-----BEGIN PRIVATE KEY-----",
	}
	for name, text := range bad {
		t.Run(name, func(t *testing.T) {
			got := k // a failed parse must not be mistaken for success
			err := got.UnmarshalText([]byte(text))
			if !errors.Is(err, fragile.ErrBadKey) {
				t.Errorf("UnmarshalText(%q) = %v, want ErrBadKey", text, err)
			}
		})
	}
}

func TestNewKeyShortRead(t *testing.T) {
	if _, err := fragile.NewKey(bytes.NewReader(make([]byte, fragile.KeySize-1))); err == nil {
		t.Error("NewKey from 31 bytes: no error")
	}
}

func TestKeyDoesNotPrintItself(t *testing.T) {
	k := testKey(t, 2)
	secret := hex.EncodeToString(k[:])
	for _, verb := range []string{"%v", "%s", "%+v"} {
		if s := fmt.Sprintf(verb, k); strings.Contains(s, secret) || strings.Contains(s, secret[:16]) {
			t.Errorf("%s prints the key: %s", verb, s)
		}
	}
	id := k.ID()
	if len(id) != 16 {
		t.Errorf("ID %q: want 16 hex digits", id)
	}
	if _, err := hex.DecodeString(id); err != nil {
		t.Errorf("ID %q is not hex", id)
	}
	if strings.Contains(secret, id) {
		t.Error("the ID is a substring of the key")
	}
	if k.ID() != id {
		t.Error("ID is not deterministic")
	}
	if testKey(t, 3).ID() == id {
		t.Error("two keys share an ID")
	}
}

func TestKeyLabels(t *testing.T) {
	k := testKey(t, 4)
	tests := []struct{ n, classes int }{{100, 10}, {103, 10}, {7, 10}, {50, 5}, {1000, 3}}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d over %d", tc.n, tc.classes), func(t *testing.T) {
			labels := k.KeyLabels(tc.n, tc.classes)
			if len(labels) != tc.n {
				t.Fatalf("%d labels", len(labels))
			}
			counts := make([]int, tc.classes)
			for _, l := range labels {
				if l < 0 || l >= tc.classes {
					t.Fatalf("label %d out of range", l)
				}
				counts[l]++
			}
			// Balanced: n/classes each, the remainder one more for the first classes.
			for c, got := range counts {
				want := tc.n / tc.classes
				if c < tc.n%tc.classes {
					want++
				}
				if got != want {
					t.Errorf("class %d appears %d times, want %d (counts %v)", c, got, want, counts)
				}
			}
			if !slices.Equal(labels, k.KeyLabels(tc.n, tc.classes)) {
				t.Error("KeyLabels is not deterministic")
			}
		})
	}

	// Shuffled by the key: not the unshuffled 0,1,2,... sequence, and different keys
	// give different orders.
	labels := k.KeyLabels(100, 10)
	plain := make([]int, 100)
	for i := range plain {
		plain[i] = i % 10
	}
	if slices.Equal(labels, plain) {
		t.Error("labels are not shuffled")
	}
	same := 0
	other := testKey(t, 5).KeyLabels(100, 10)
	for i := range labels {
		if labels[i] == other[i] {
			same++
		}
	}
	// Independent shuffles agree in about 10 of 100 places; 40 would be a 1e-12 event.
	if same > 40 {
		t.Errorf("two keys' labels agree in %d of 100 places: %v / %v", same, labels, other)
	}
}

func TestKeyNeverFormatsItsBytes(t *testing.T) {
	var k fragile.Key
	for i := range k {
		k[i] = byte(0xa0 + i%16)
	}
	secretHex := fmt.Sprintf("%x", k[:])
	// fmt cannot call methods on unexported fields, so only exported holders are
	// protected: the package never stores a Key in an unexported field it prints.
	holder := struct{ Key fragile.Key }{k}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
		for _, v := range []any{k, &k, holder, &holder} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(strings.ToLower(out), secretHex[:16]) || strings.Contains(out, "160") {
				t.Errorf("fmt %s of %T prints key material: %s", verb, v, out)
			}
		}
	}
}
