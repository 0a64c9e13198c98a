package oip_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"testing"

	"github.com/fragile-operator/fragile-operator/internal/oiptest"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/oip"
)

// FuzzData checks the tensor data scanner, which reads untrusted server answers and client
// requests, against a reference built on encoding/json: it must accept exactly the
// rectangular arrays of FP32 numbers at most MaxRank deep, with the same values in row-major
// order and the same implied shape, and never panic.
func FuzzData(f *testing.F) {
	for _, seed := range []string{oiptest.SpecFlatData, oiptest.SpecNestedData, `[]`, `[[]]`, `[[1],[2,3]]`, `[1,[2]]`,
		`[[[1.5e-3, -2]], [[3, 4e38]]]`, `[1e39]`, `["1"]`, `[true]`, `{"a":1}`, `[[[[[[[[[1]]]]]]]]]`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var d oip.Data
		err := json.Unmarshal(in, &d)
		values, shape, ok := reference(in)
		switch {
		case ok && err != nil:
			t.Fatalf("%q: refused (%v), the reference reads %v of shape %v", in, err, values, shape)
		case !ok && err == nil:
			t.Fatalf("%q: accepted as %v, the reference refuses it", in, d.Values)
		case !ok:
			return
		}
		if !slices.Equal(d.Values, values) {
			t.Fatalf("%q: values %v, the reference reads %v", in, d.Values, values)
		}
		if len(shape) > 1 && !slices.Equal(d.Nested, shape) || len(shape) <= 1 && d.Nested != nil {
			t.Fatalf("%q: implied shape %v, the reference %v", in, d.Nested, shape)
		}
		// What is accepted re-encodes flat and decodes to the same values.
		out, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("%q: re-encoding: %v", in, err)
		}
		var back oip.Data
		if err := json.Unmarshal(out, &back); err != nil || !slices.Equal(back.Values, d.Values) {
			t.Fatalf("%q: re-encoded as %s, decoded to %v (%v)", in, out, back.Values, err)
		}
	})
}

// reference decodes in with encoding/json and flattens it when it is a rectangular array of
// numbers that fit FP32, at most MaxRank deep.
func reference(in []byte) (values []float32, shape []int64, ok bool) {
	if !json.Valid(in) {
		return nil, nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, nil, false
	}
	if _, isArray := v.([]any); !isArray {
		return nil, nil, false
	}
	leaf := -1 // the depth numbers live at, once one is seen
	var walk func(v any, depth int) bool
	walk = func(v any, depth int) bool {
		switch x := v.(type) {
		case json.Number:
			if leaf < 0 {
				leaf = depth
			}
			if depth != leaf || depth != len(shape) {
				return false
			}
			f, err := strconv.ParseFloat(string(x), 32)
			if err != nil {
				return false
			}
			values = append(values, float32(f))
			return true
		case []any:
			if depth >= oip.MaxRank || leaf >= 0 && depth >= leaf {
				return false
			}
			if depth == len(shape) {
				shape = append(shape, int64(len(x)))
			} else if shape[depth] != int64(len(x)) {
				return false
			}
			for _, e := range x {
				if !walk(e, depth+1) {
					return false
				}
			}
			return true
		}
		return false
	}
	if !walk(v, 0) {
		return nil, nil, false
	}
	return values, shape, true
}
