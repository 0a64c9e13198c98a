package eval

import (
	"context"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fragile-operator/fragile-operator/pkg/fragile"
)

// TestQuickEvaluation runs the --quick protocol and asserts the headline claims
// loosely: the boundary method detects every attack class on at least one model,
// first flips come within a few queries there, and no benign control alarms, with
// onnxruntime as the second runtime. make test provides the data and onnxruntime.
func TestQuickEvaluation(t *testing.T) {
	if testing.Short() {
		t.Skip("the quick evaluation takes about a minute")
	}
	lib := os.Getenv("FRAGILE_ORT_LIB")
	if lib == "" {
		t.Skip("FRAGILE_ORT_LIB is not set; make test installs onnxruntime and sets it")
	}
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	subjects, err := Subjects(context.Background(), SubjectOptions{
		Architectures: []string{"mlp"}, TrainSteps: 900, MNIST7: true,
		CacheDir: filepath.Join(cache, "fragile-operator", "eval"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ort, err := OnnxRuntime(filepath.Dir(strings.TrimSpace(string(gomod))), lib, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), subjects, Attacks(true), Config{
		Methods:       []fragile.Method{fragile.MethodPaper, fragile.MethodBoundary},
		Seeds:         1,
		Key:           fragile.Key(sha256.Sum256([]byte("quick evaluation"))),
		SecondRuntime: ort, SecondRuntimeName: "onnxruntime",
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := rep.FalseAlarms(); n != 0 {
		for _, c := range rep.Controls {
			t.Logf("%+v", c)
		}
		t.Errorf("%d false alarms on benign controls", n)
	}
	if len(rep.Controls) != 2*2*3 {
		t.Errorf("%d benign checks ran, want 12 (2 models x 2 methods x 3 controls)", len(rep.Controls))
	}
	detected := map[string]bool{}
	classes := map[string]bool{}
	for _, row := range rep.Rows {
		classes[row.Attack.Class] = true
		if row.Method == string(fragile.MethodBoundary) && row.Detected == row.Models {
			detected[row.Attack.Class] = true
			if row.FirstFlip > 5 {
				t.Errorf("%s, %s: first flip after %.1f queries on average, want within 5", row.Subject, row.Attack.Label, row.FirstFlip)
			}
		}
	}
	for class := range classes {
		if !detected[class] {
			t.Errorf("attack class %s was not detected by the boundary method on any model", class)
		}
	}
	if len(classes) != 6 {
		t.Errorf("%d attack classes ran, want 6", len(classes))
	}
}
