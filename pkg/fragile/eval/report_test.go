package eval

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/fragile-operator/fragile-operator/pkg/fragile"
)

// syntheticReport is one subject, two methods and a fine-tuning series of three
// strengths, the weakest of which changed no model.
func syntheticReport() *Report {
	methods := []fragile.Method{fragile.MethodPaper, fragile.MethodTie}
	rep := &Report{
		Subjects: []*Subject{{Name: "toy", CleanAccuracy: 0.9}},
		Methods:  methods,
		Margins:  map[string]map[fragile.Method]float64{"toy": {fragile.MethodPaper: 1.5, fragile.MethodTie: 2e-5}},
	}
	for _, steps := range []float64{1, 10, 100} {
		a := Attack{Class: "finetune", Label: "fine-tune " + strings.Repeat("I", int(math.Log10(steps))+1), Series: "fine-tune", Strength: steps, Unit: "fine-tuning steps"}
		for i, m := range methods {
			row := Row{Subject: "toy", Method: string(m), Attack: a, Models: 3, Detected: 3, ChangeRate: 0.3 + 0.6*float64(i), FirstFlip: 1.5, FirstFlipSD: 0.5, Accuracy: 0.89}
			switch steps {
			case 1:
				row.Unchanged, row.Detected, row.ChangeRate, row.FirstFlip = 3, 0, 0, math.NaN()
			case 10:
				row.Unchanged, row.Detected = 1, 2
				if m == fragile.MethodPaper {
					row.ChangeRate = 0.9004
				}
			case 100:
				if m == fragile.MethodPaper {
					row.FirstFlip = 1
				}
			}
			rep.Rows = append(rep.Rows, row)
		}
	}
	rep.Controls = []Control{
		{Subject: "toy", Method: "paper", Control: "float64 inference", Total: 100, Deviation: 2e-7, MarginRatio: 150},
		{Subject: "toy", Method: "tie", Control: "float64 inference", Total: 100, Mismatched: 1, Deviation: 3e-7, MarginRatio: 0.5},
	}
	return rep
}

// TestMarkdownCountsOnlyChangedModels checks the cells and the summary: models an
// attack left unchanged count neither as detected nor as missed.
func TestMarkdownCountsOnlyChangedModels(t *testing.T) {
	var md bytes.Buffer
	syntheticReport().Markdown(&md)
	out := md.String()
	for _, want := range []string{
		"| fine-tune I (3 of 3 models unchanged) | 89.00% | weights unchanged | weights unchanged |",
		"| fine-tune II (1 of 3 models unchanged) | 89.00% | 0.90 · 2/2 · 1.5 ± 0.5 | 0.90 · 2/2 · 1.5 ± 0.5 |",
		"| fine-tune III | 89.00% | 0.30 · 3/3 · 1.0 ± 0.5 | 0.90 · 3/3 · 1.5 ± 0.5 |",
		"| toy | float64 inference | 0/100 flipped | 1/100 flipped |",
		"False alarms: 1 of 2 benign checks.",
		"| toy | float64 inference | 2.0e-07 · 150x | 3.0e-07 · 0.5x |",
		"Tightest trigger over every control and method: margin = 0.5x twice its largest logit difference.",
		"Rows: the 2 (model, attack) configurations in which at least one attacked model changed.",
		// 0.9004 prints as tie's 0.90, so it does not count; 1.0 queries beat 1.5.
		"| paper | 5/5 | 0.30, 0.60, 0.90 | 1.5 | 0 / 1 |",
		"| tie | 5/5 | 0.90, 0.90, 0.90 | 1.5 | (ours) |",
		// tie's rows: 0.90 and 0.90 change rate, first flips 1.5 and 1.5, one alarm.
		"| toy | 5/5 | none run | 0.90 | 1.50 | 1/1 | not: false alarms |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
}

// TestPlotsSkipUnchangedModels checks that a strength at which no model changed is
// not plotted as a change rate of zero.
func TestPlotsSkipUnchangedModels(t *testing.T) {
	dir := t.TempDir()
	files, err := syntheticReport().Plots(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 {
		t.Fatalf("%d plots, want 1 (one series): %v", len(files), files)
	}
	f, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", files[0], err)
	}
	if b := img.Bounds(); b.Dx() < 300 || b.Dy() < 200 {
		t.Errorf("plot is %dx%d pixels", b.Dx(), b.Dy())
	}

	// With the unchanged strength left out, two strengths remain: still a line. With
	// only one changed strength there is no line to draw, and no file.
	rep := syntheticReport()
	rep.Rows = rep.Rows[:4]
	if files, err := rep.Plots(t.TempDir()); err != nil || len(files) != 0 {
		t.Errorf("one changed strength: %v, %v; want no plot", files, err)
	}
}

// TestDeviation checks the noise-floor measurement on two triggers of three classes.
func TestDeviation(t *testing.T) {
	reference := []float64{
		10, 9, -20, // margin 1, largest logit 20
		1, 5, 4.9, // margin 0.1, largest logit 5
	}
	other := []float64{
		10.002, 9, -20, // differs by 0.002: ratio 1 / 0.004 = 250
		1, 5, 4.925, // differs by 0.025: ratio 0.1 / 0.05 = 2
	}
	largest, ratio := deviation(reference, other, 3)
	if math.Abs(largest-0.025) > 1e-12 || math.Abs(ratio-2) > 1e-9 {
		t.Errorf("deviation = %g, margin ratio %g; want 0.025 and 2", largest, ratio)
	}
	if _, ratio := deviation(reference, reference, 3); !math.IsInf(ratio, 1) {
		t.Errorf("identical logits: margin ratio %g, want +Inf", ratio)
	}
}

// TestAcceptanceNamesEveryUnmetGoal checks the acceptance line of a model whose
// pruning went unseen while 18 of 20 single-weight changes were caught (the goal).
func TestAcceptanceNamesEveryUnmetGoal(t *testing.T) {
	tie := string(fragile.DefaultMethod)
	rep := &Report{
		Subjects: []*Subject{{Name: "real"}},
		Methods:  []fragile.Method{fragile.DefaultMethod},
		Rows: []Row{
			{Subject: "real", Method: tie, Attack: Attack{Class: "prune", Label: "prune"}, Models: 1, ChangeRate: 0, FirstFlip: math.NaN()},
			{Subject: "real", Method: tie, Attack: Attack{Class: "int8", Label: "int8"}, Models: 1, Detected: 1, ChangeRate: 0.9, FirstFlip: 1.1},
			{Subject: "real", Method: tie, Attack: Attack{Class: "single-weight", Label: "one weight"}, Models: 20, Detected: 18, ChangeRate: 0.6, FirstFlip: 1.9},
		},
		Controls: []Control{{Subject: "real", Method: tie, Control: "float64 inference", Total: 100}},
	}
	var md bytes.Buffer
	rep.acceptance(&md)
	want := "| real | 1/2 | 18/20 (90%) | 0.50 | never, on some rows | 0/1 | not: detection, change rate, first flip |"
	if !strings.Contains(md.String(), want) {
		t.Errorf("acceptance lacks %q:\n%s", want, md.String())
	}
}
