package contract

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the number of secret bytes in a key.
const KeySize = 32

// KeyTextPrefix marks the text form of a key, so a key file is recognisable and its
// format can evolve.
const KeyTextPrefix = "fragile-key-v1:"

// ErrBadKey is wrapped by every key-parsing error.
var ErrBadKey = errors.New("invalid key")

// FormatKey is the text form of a key, one line without a newline:
// fragile-key-v1:<64 lowercase hex digits>. `fragile keygen` writes it to a file and the
// operator into the generated key Secret; both are read back by ParseKey.
func FormatKey(raw [KeySize]byte) []byte {
	return []byte(KeyTextPrefix + hex.EncodeToString(raw[:]))
}

// ParseKey parses FormatKey's text form; surrounding whitespace (a file's final newline)
// is ignored.
func ParseKey(text []byte) ([KeySize]byte, error) {
	var raw [KeySize]byte
	s := strings.TrimSpace(string(text))
	if !strings.HasPrefix(s, KeyTextPrefix) {
		return raw, fmt.Errorf("%w: a key file starts with %q", ErrBadKey, KeyTextPrefix)
	}
	b, err := hex.DecodeString(strings.TrimPrefix(s, KeyTextPrefix))
	if err != nil || len(b) != KeySize {
		return raw, fmt.Errorf("%w: expected %d hex-encoded bytes after %q", ErrBadKey, KeySize, KeyTextPrefix)
	}
	copy(raw[:], b)
	return raw, nil
}
