package eval

import (
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fragile-operator/fragile-operator/internal/onnxtest"
	"github.com/fragile-operator/fragile-operator/internal/zoo"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/attack"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// slowTestSetup skips a slow test under -short (saying why) or without onnxruntime,
// and returns the repository root and onnxruntime's library.
func slowTestSetup(t *testing.T, why string) (root, lib string) {
	t.Helper()
	if testing.Short() {
		t.Skip(why)
	}
	if lib = os.Getenv("FRAGILE_ORT_LIB"); lib == "" {
		t.Skip("FRAGILE_ORT_LIB is not set; make test installs onnxruntime and sets it")
	}
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(gomod))), lib
}

// TestQuickEvaluation runs the --quick protocol and asserts the headline claims
// loosely: our method (the default, tie) detects every attack class on at least one
// model, first flips come within a few queries there, it flips more triggers than the
// paper's loss on every row (every attack class but the single-weight change, whose
// rate is reported), and no benign control alarms or moves any trigger's
// logits by as much as half its margin, with onnxruntime as the second runtime.
// make test provides the data and onnxruntime.
func TestQuickEvaluation(t *testing.T) {
	root, lib := slowTestSetup(t, "the quick evaluation takes about a minute")
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	subjects, err := Subjects(context.Background(), SubjectOptions{
		Architectures: []string{"mlp"}, TrainSteps: 900, MNIST7: true, Quick: true,
		CacheDir: filepath.Join(cache, "fragile-operator", "eval"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ort, err := OnnxRuntime(root, lib, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), subjects, Config{
		Methods:       []fragile.Method{fragile.MethodPaper, fragile.MethodTie},
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
	for _, c := range rep.Controls {
		// The false-alarm guard of issue 4: every trigger's margin exceeds what the
		// control moved its logits, so no runtime difference can flip it.
		if c.Err == "" && !(c.MarginRatio > 1) {
			t.Errorf("%s, %s, %s: a trigger's margin is only %.3g times twice its logit difference", c.Subject, c.Method, c.Control, c.MarginRatio)
		}
	}
	if len(rep.Controls) != 2*2*4 {
		t.Errorf("%d benign checks ran, want 16 (2 models x 2 methods x 4 controls)", len(rep.Controls))
	}
	detected := map[string]bool{}
	classes := map[string]bool{}
	paper := map[string]float64{} // change rate by subject and attack
	for _, row := range rep.Rows {
		if row.Method == string(fragile.MethodPaper) {
			paper[row.Subject+row.Attack.Label] = row.ChangeRate
		}
	}
	for _, row := range rep.Rows {
		classes[row.Attack.Class] = true
		if row.Method != string(fragile.MethodTie) {
			continue
		}
		if row.Attack.Class == "single-weight" {
			// A single weight changed by 1% may feed no trigger's units: its
			// detection rate is reported, not required.
			detected[row.Attack.Class] = true
			continue
		}
		if p := paper[row.Subject+row.Attack.Label]; row.ChangeRate <= p && p < 0.9 {
			t.Errorf("%s, %s: change rate %.2f, the paper's loss %.2f", row.Subject, row.Attack.Label, row.ChangeRate, p)
		}
		if row.Detected > 0 && row.Detected == row.Models-row.Unchanged {
			detected[row.Attack.Class] = true
			if row.FirstFlip > 5 {
				t.Errorf("%s, %s: first flip after %.1f queries on average, want within 5", row.Subject, row.Attack.Label, row.FirstFlip)
			}
		}
	}
	for class := range classes {
		if !detected[class] {
			t.Errorf("attack class %s was not detected by the tie method on any model", class)
		}
	}
	if len(classes) != 8 {
		t.Errorf("%d attack classes ran, want 8", len(classes))
	}
}

// TestQuickRealModel runs the --quick protocol of the real CIFAR-10 models: issue
// 11's oval21__cifar_wide_kw, the default method, with onnxruntime. It asserts what
// must hold of any method: the four benign controls never alarm, the subject was
// normalised as its authors trained it (its accuracy on the real images is the
// README's), and the attacks that move every weight (fine-tuning, int8) are caught
// on the first queries. Pruning and single-weight rates are logged: issue 11 asks
// for them, and the tables of BENCHMARKS.md report them.
func TestQuickRealModel(t *testing.T) {
	root, lib := slowTestSetup(t, "watermarks a real CIFAR-10 model (minutes)")
	dir, err := zoo.RealModelsDir(root)
	if errors.Is(err, zoo.ErrNoRealModels) {
		t.Skipf("%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	subjects, err := Subjects(context.Background(), SubjectOptions{RealModels: QuickRealModels, RealModelsDir: dir, Quick: true})
	if err != nil {
		t.Fatal(err)
	}
	if acc := subjects[0].CleanAccuracy; acc < 0.7 {
		t.Fatalf("%s: accuracy %.2f on the real images; the README's models score 70-93%%: is the input normalised?", subjects[0].Name, acc)
	}
	ort, err := OnnxRuntime(root, lib, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), subjects, Config{
		Methods: []fragile.Method{fragile.DefaultMethod}, Seeds: 1,
		Key:           fragile.Key(sha256.Sum256([]byte("quick real-model evaluation"))),
		SecondRuntime: ort, SecondRuntimeName: "onnxruntime",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Controls) != 4 {
		t.Errorf("%d benign checks, want 4", len(rep.Controls))
	}
	for _, c := range rep.Controls {
		if c.Mismatched > 0 || c.Err != "" {
			t.Errorf("false alarm: %+v", c)
		}
	}
	for _, row := range rep.Rows {
		t.Logf("%s: detected %d/%d, change rate %.2f, first flip %.1f, accuracy %.3f", row.Attack.Label, row.Detected, row.Models-row.Unchanged, row.ChangeRate, row.FirstFlip, row.Accuracy)
		switch row.Attack.Class {
		case "finetune", "int8":
			if row.Detected != row.Models-row.Unchanged || row.FirstFlip > 1.5 {
				t.Errorf("%s: detected %d of %d changed models, first flip %.1f; want all, within 1.5 queries", row.Attack.Label, row.Detected, row.Models-row.Unchanged, row.FirstFlip)
			}
		}
	}
}

// TestSameWeights checks the test that keeps unchanged "attacked" models out of the
// detection rate: a re-serialised file has the same weights, a pruned one does not.
func TestSameWeights(t *testing.T) {
	m := onnxtest.MLP(rand.New(rand.NewPCG(5, 6)))
	model := onnx.Encode(m)
	pruned, err := attack.Prune(model, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := onnx.Decode(model)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		other []byte
		want  bool
	}{
		"itself":        {model, true},
		"re-serialised": {onnx.Encode(decoded), true},
		"pruned 10%":    {pruned, false},
	} {
		got, err := sameWeights(model, c.other)
		if err != nil || got != c.want {
			t.Errorf("%s: same weights %v (%v), want %v", name, got, err, c.want)
		}
	}
	if _, err := sameWeights(model, []byte("not onnx")); err == nil {
		t.Error("a file that is not ONNX: no error")
	}
}
