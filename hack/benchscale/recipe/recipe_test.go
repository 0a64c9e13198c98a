package recipe

import (
	"slices"
	"testing"
)

// TestFlags: where outputs go and which files are read are not part of a recipe; every other
// flag is, in any order; other command-line shapes are refused.
func TestFlags(t *testing.T) {
	a, out, ok := Flags([]string{"--model", "/mnt/models/m.onnx", "--key", "/k/key", "--out-secret", "m-bundle",
		"--triggers", "100", "--input-range", "0,255", "--report", "/dev/termination-log"})
	if !ok {
		t.Fatal("refused the operator's command line")
	}
	if want := []string{"--input-range=0,255", "--triggers=100"}; !slices.Equal(a, want) {
		t.Errorf("recipe %v, want %v", a, want)
	}
	if out["--model"] != "/mnt/models/m.onnx" || out["--out-secret"] != "m-bundle" || out["--report"] != "/dev/termination-log" {
		t.Errorf("outputs %v", out)
	}
	b, _, _ := Flags([]string{"--input-range", "0,255", "--out", "/tmp/b", "--triggers", "100", "--model", "x"})
	if !slices.Equal(a, b) {
		t.Errorf("the same recipe in another order and with other outputs: %v != %v", b, a)
	}
	c, _, _ := Flags([]string{"--triggers", "100", "--input-range", "0,255", "--lambda", "5"})
	if slices.Equal(a, c) {
		t.Error("an extra --lambda gave the same recipe")
	}
	for _, bad := range [][]string{{"--triggers"}, {"--triggers=100", "x"}, {"triggers", "100"}} {
		if _, _, ok := Flags(bad); ok {
			t.Errorf("accepted %q", bad)
		}
	}
}
