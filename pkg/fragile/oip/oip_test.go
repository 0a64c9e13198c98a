package oip_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/fragile-operator/fragile-operator/internal/oiptest"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/oip"
)

func TestDataDecodesFlatAndNested(t *testing.T) {
	var flat, nested oip.Data
	if err := json.Unmarshal([]byte(oiptest.SpecFlatData), &flat); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(oiptest.SpecNestedData), &nested); err != nil {
		t.Fatal(err)
	}
	want := []float32{1, 2, 4, 5}
	if !slices.Equal(flat.Values, want) || !slices.Equal(nested.Values, want) {
		t.Fatalf("flat %v nested %v, want %v for both", flat.Values, nested.Values, want)
	}
	if flat.Nested != nil || !slices.Equal(nested.Nested, []int64{2, 2}) {
		t.Errorf("implied shapes: flat %v nested %v", flat.Nested, nested.Nested)
	}
	for _, d := range []oip.Data{flat, nested} {
		if err := d.CheckShape([]int64{2, 2}); err != nil {
			t.Errorf("shape [2 2]: %v", err)
		}
	}
	if err := nested.CheckShape([]int64{4}); err == nil {
		t.Error("nested [2 2] data accepted for shape [4]")
	}
	if err := flat.CheckShape([]int64{4}); err != nil {
		t.Errorf("flat data for shape [4]: %v", err)
	}
	if err := flat.CheckShape([]int64{3}); err == nil {
		t.Error("4 values accepted for shape [3]")
	}
}

func TestSpecResponseDecodes(t *testing.T) {
	var resp oip.InferResponse
	if err := json.Unmarshal([]byte(oiptest.SpecInferResponse), &resp); err != nil {
		t.Fatal(err)
	}
	out := resp.Outputs[0]
	if resp.ID != "42" || out.Name != "output0" || out.Datatype != oip.FP32 || !slices.Equal(out.Shape, []int64{3, 2}) {
		t.Fatalf("decoded %+v", resp)
	}
	if err := out.Data.CheckShape(out.Shape); err != nil || out.Data.Values[3] != float32(2.1) {
		t.Errorf("data %v: %v", out.Data.Values, err)
	}
}

func TestDataRejects(t *testing.T) {
	tests := map[string]string{
		"not an array":      `{"a": 1}`,
		"a string":          `["1"]`,
		"a boolean":         `[true]`,
		"null":              `[null]`,
		"ragged":            `[[1, 2], [3]]`,
		"mixed depths":      `[[1, 2], 3]`,
		"number then array": `[1, [2]]`,
		"too deep":          `[[[[[[[[[1]]]]]]]]]`,
		"beyond float32":    `[1e39]`,
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			var d oip.Data
			if err := json.Unmarshal([]byte(in), &d); err == nil {
				t.Errorf("%s decoded to %v", in, d.Values)
			}
		})
	}
}

func TestDataRoundTripsFloat32Exactly(t *testing.T) {
	in := oip.Data{Values: []float32{0.1, 1.0 / 3, 1e-30, -2.5e20, 0.99999994}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out oip.Data
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(in.Values, out.Values) {
		t.Errorf("%s decoded to %v, sent %v", b, out.Values, in.Values)
	}
	if _, err := json.Marshal(oip.Data{Values: []float32{float32(negZeroInf())}}); err == nil {
		t.Error("an infinite value was encoded")
	}
}

func negZeroInf() float64 { z := 0.0; return -1 / z }

func TestReadJSONBoundsTheBody(t *testing.T) {
	var v map[string]any
	err := oip.ReadJSON(strings.NewReader(`{"a": "`+strings.Repeat("x", 100)+`"}`), 64, &v)
	if !errors.Is(err, oip.ErrTooLarge) {
		t.Errorf("a 110-byte body under a 64-byte bound: %v", err)
	}
	if err := oip.ReadJSON(strings.NewReader(`{"a": 1}`), 64, &v); err != nil || v["a"] != 1.0 {
		t.Errorf("small body: %v %v", v, err)
	}
}

func TestModelPath(t *testing.T) {
	if got := oip.ModelPath("mnist", "", "/infer"); got != "/v2/models/mnist/infer" {
		t.Error(got)
	}
	if got := oip.ModelPath("mnist", "3", "/ready"); got != "/v2/models/mnist/versions/3/ready" {
		t.Error(got)
	}
}
