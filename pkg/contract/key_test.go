package contract

import (
	"errors"
	"strings"
	"testing"
)

func TestKeyTextRoundTrip(t *testing.T) {
	var raw [KeySize]byte
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	text := FormatKey(raw)
	if !strings.HasPrefix(string(text), KeyTextPrefix) || len(text) != len(KeyTextPrefix)+2*KeySize {
		t.Fatalf("FormatKey = %q", text)
	}
	got, err := ParseKey(append(append([]byte(" "), text...), '\n'))
	if err != nil || got != raw {
		t.Fatalf("ParseKey(FormatKey) = %x, %v; want %x", got, err, raw)
	}
}

func TestParseKeyRejects(t *testing.T) {
	for name, text := range map[string]string{
		"no prefix":   strings.Repeat("ab", KeySize),
		"short":       KeyTextPrefix + strings.Repeat("ab", KeySize-1),
		"long":        KeyTextPrefix + strings.Repeat("ab", KeySize+1),
		"not hex":     KeyTextPrefix + strings.Repeat("zz", KeySize),
		"old version": "fragile-key-v0:" + strings.Repeat("ab", KeySize),
	} {
		if _, err := ParseKey([]byte(text)); !errors.Is(err, ErrBadKey) {
			t.Errorf("%s: err %v, want ErrBadKey", name, err)
		}
	}
}

func TestExitCodes(t *testing.T) {
	for r, want := range map[Result]int{ResultIntact: 0, ResultTampered: 1, ResultError: 2, "": 2, "garbled": 2} {
		if got := r.ExitCode(); got != want {
			t.Errorf("%q.ExitCode() = %d, want %d", r, got, want)
		}
	}
}
