package fragile

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/fragile-operator/fragile-operator/pkg/contract"
)

// KeySize is the number of secret bytes in a Key.
const KeySize = contract.KeySize

// Key is the watermark secret. Everything secret derives from it deterministically.
type Key [KeySize]byte

// NewKey draws a key from r, which should be crypto/rand.Reader.
func NewKey(r io.Reader) (Key, error) {
	var k Key
	if _, err := io.ReadFull(r, k[:]); err != nil {
		return Key{}, fmt.Errorf("reading %d random bytes: %w", KeySize, err)
	}
	return k, nil
}

// MarshalText encodes the key as one line of text in pkg/contract's key format:
// fragile-key-v1:<64 hex digits>.
func (k Key) MarshalText() ([]byte, error) { return contract.FormatKey(k), nil }

// ErrBadKey is wrapped by every key-parsing error.
var ErrBadKey = contract.ErrBadKey

// UnmarshalText parses the text encoding; surrounding whitespace is ignored.
func (k *Key) UnmarshalText(text []byte) error {
	raw, err := contract.ParseKey(text)
	if err != nil {
		return err
	}
	*k = raw
	return nil
}

// String never reveals the key: it prints only the public key ID.
func (k Key) String() string { return "fragile.Key(id " + k.ID() + ")" }

// GoString keeps %#v from printing the secret bytes, as String does for %v.
func (k Key) GoString() string { return k.String() }

// Format prints only the key ID whatever the verb, so no formatting of a Key, or of
// a struct holding one in an exported field, reveals the secret.
func (k Key) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }

// ID is a public fingerprint of the key (16 hex digits of a one-way derivation).
// Bundles record it so that a wrong key is reported as such.
func (k Key) ID() string { return hex.EncodeToString(k.derive("key-id", 8)) }

// derive returns n bytes for one purpose, by HKDF-SHA256 with the purpose as info,
// so that values derived for different purposes are independent.
func (k Key) derive(purpose string, n int) []byte {
	out, err := hkdf.Key(sha256.New, k[:], nil, "fragile/v1/"+purpose, n)
	if err != nil {
		panic("hkdf: " + err.Error()) // only for n beyond 255*32 bytes, a programming error
	}
	return out
}

// rng returns a deterministic random source for one purpose.
func (k Key) rng(purpose string) *rand.Rand {
	var seed [32]byte
	copy(seed[:], k.derive("rng/"+purpose, 32))
	return rand.New(rand.NewChaCha8(seed))
}

// KeyLabels returns n key labels over classes classes: balanced (each class n/classes
// times, the remainder spread over the first classes) and secretly shuffled.
func (k Key) KeyLabels(n, classes int) []int {
	labels := make([]int, n)
	for i := range labels {
		labels[i] = i % classes
	}
	r := k.rng("labels")
	r.Shuffle(n, func(i, j int) { labels[i], labels[j] = labels[j], labels[i] })
	return labels
}
