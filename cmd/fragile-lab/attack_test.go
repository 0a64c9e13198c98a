package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/fragile-operator/fragile-operator/internal/zoo"
)

// stdout runs fn with os.Stdout captured and returns what it printed.
func stdout(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	fn()
	os.Stdout = saved
	w.Close()
	return <-done
}

// TestAttackFineTuneRealModel fine-tunes a real CIFAR-10 model on the real images
// through the command line, normalised as its authors trained it, and checks that
// the accuracy before is the README's (70-93%, so the normalisation was applied)
// and that both figures are printed. It also runs int8 and single-weight.
func TestAttackFineTuneRealModel(t *testing.T) {
	dir, err := zoo.RealModelsDir("../..")
	if err != nil {
		t.Skipf("%v", err)
	}
	m, err := zoo.CIFARModelNamed("oval21__cifar_deep_kw")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "attacked.onnx")
	data := filepath.Join(dir, zoo.CIFARImagesFile)
	for _, last := range []string{"--last-layer=false", "--last-layer"} {
		var code int
		printed := stdout(t, func() {
			code = run(t, "attack", "finetune", "--model", m.Path(dir), "--out", out, "--data", data,
				"--input-mean", "0.485,0.456,0.406", "--input-std", "0.225", "--steps", "2", "--batch", "16", last)
		})
		if code != 0 {
			t.Fatalf("attack finetune %s: exit %d", last, code)
		}
		t.Log(printed)
		got := regexp.MustCompile(`(\d+\.\d+)% before, (\d+\.\d+)% after`).FindStringSubmatch(printed)
		if got == nil {
			t.Fatalf("no accuracy before and after in %q", printed)
		}
		var before float64
		if _, err := fmt.Sscan(got[1], &before); err != nil || before < 60 {
			t.Errorf("accuracy before %s%%: the normalised real model should score 60%% or more", got[1])
		}
	}
	if code := run(t, "attack", "finetune", "--model", m.Path(dir), "--out", out, "--data", data, "--input-mean", "0.485,x", "--input-std", "0.225"); code != exitUsage {
		t.Errorf("a malformed --input-mean: exit %d, want %d", code, exitUsage)
	}
	for _, args := range [][]string{{"int8"}, {"single-weight", "--seed", "4"}} {
		if code := run(t, append([]string{"attack"}, append(args, "--model", m.Path(dir), "--out", out)...)...); code != 0 {
			t.Errorf("attack %v: exit %d", args, code)
		}
	}
}
