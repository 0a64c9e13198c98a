package eval

import (
	"fmt"
	"io"
	"math"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/fragile-operator/fragile-operator/pkg/fragile"
)

// Markdown writes a summary per method, one table per subject (a row per attack, a
// column per method, each cell "change rate / detection / first-flip queries"), then
// the benign controls.
func (r *Report) Markdown(w io.Writer) {
	r.summary(w)
	r.acceptance(w)
	for _, s := range r.Subjects {
		fmt.Fprintf(w, "### %s (clean test accuracy %.2f%%)\n\n", s.Name, 100*s.CleanAccuracy)
		fmt.Fprint(w, "Median top-1/top-2 logit margin of the triggers:")
		for _, m := range r.Methods {
			fmt.Fprintf(w, " %s %.3g;", m, r.Margins[s.Name][m])
		}
		fmt.Fprint(w, "\n\nEach cell: change rate · detected of changed models · mean first-flip queries ± sd (random query orders).\n\n")
		r.tableHeader(w, "| attack | attacked accuracy |", "|---|---:|")
		for _, row := range r.rowsOf(s.Name) {
			label := row[0].Attack.Label
			if u := row[0].Unchanged; u > 0 {
				label += fmt.Sprintf(" (%d of %d models unchanged)", u, row[0].Models)
			}
			fmt.Fprintf(w, "| %s | %.2f%% |", label, 100*row[0].Accuracy)
			for _, c := range row {
				if c.Unchanged == c.Models {
					fmt.Fprint(w, " weights unchanged |")
					continue
				}
				ff := "never"
				if !math.IsNaN(c.FirstFlip) {
					ff = fmt.Sprintf("%.1f ± %.1f", c.FirstFlip, c.FirstFlipSD)
				}
				fmt.Fprintf(w, " %.2f · %d/%d · %s |", c.ChangeRate, c.Detected, c.Models-c.Unchanged, ff)
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprint(w, "### Benign controls (must never alarm)\n\n")
	r.tableHeader(w, "| model | control |", "|---|---|")
	type key struct{ subject, control string }
	cells := map[key]map[string]Control{}
	var order []key
	for _, c := range r.Controls {
		k := key{c.Subject, c.Control}
		if cells[k] == nil {
			cells[k] = map[string]Control{}
			order = append(order, k)
		}
		cells[k][c.Method] = c
	}
	for _, k := range order {
		fmt.Fprintf(w, "| %s | %s |", k.subject, k.control)
		for _, m := range r.Methods {
			c := cells[k][string(m)]
			if c.Err != "" {
				fmt.Fprintf(w, " error: %s |", c.Err)
			} else {
				fmt.Fprintf(w, " %d/%d flipped |", c.Mismatched, c.Total)
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\nFalse alarms: %d of %d benign checks.\n", r.FalseAlarms(), len(r.Controls))

	fmt.Fprint(w, "\n### Noise floor of each control\n\n")
	fmt.Fprint(w, "Each cell: the largest logit difference from the verification path (float32, our runtime) over every trigger and class, in logits (compare the median margins above) · the smallest ratio, over the triggers, of the trigger's top-1/top-2 margin to twice its largest difference (above 1x no label can change).\n\n")
	r.tableHeader(w, "| model | control |", "|---|---|")
	for _, k := range order {
		fmt.Fprintf(w, "| %s | %s |", k.subject, k.control)
		for _, m := range r.Methods {
			c := cells[k][string(m)]
			switch {
			case c.Err != "":
				fmt.Fprint(w, " error |")
			case math.IsInf(c.MarginRatio, 1):
				fmt.Fprint(w, " identical |")
			default:
				fmt.Fprintf(w, " %.1e · %s |", c.Deviation, ratioText(c.MarginRatio))
			}
		}
		fmt.Fprintln(w)
	}
	worst := math.Inf(1)
	for _, c := range r.Controls {
		if c.Err == "" {
			worst = math.Min(worst, c.MarginRatio)
		}
	}
	fmt.Fprintf(w, "\nTightest trigger over every control and method: margin = %s twice its largest logit difference.\n", ratioText(worst))
}

// ratioText prints a margin ratio compactly: 3 significant digits, "inf" when no
// logit moved.
func ratioText(v float64) string {
	if math.IsInf(v, 1) {
		return "inf x"
	}
	return fmt.Sprintf("%.3gx", v)
}

// tableHeader writes a markdown table header: the leading columns, one column per
// method, and the separator line.
func (r *Report) tableHeader(w io.Writer, leading, separator string) {
	fmt.Fprint(w, leading)
	for _, m := range r.Methods {
		fmt.Fprintf(w, " %s |", m)
	}
	fmt.Fprint(w, "\n"+separator)
	for range r.Methods {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w)
}

// summary writes, per method, its detection over all changed models, the range and
// mean of its change rate and its worst mean first-flip count over the rows, and the
// rows on which it beats the default method on either measure.
func (r *Report) summary(w io.Writer) {
	type key struct{ subject, attack string }
	ours := map[key]Row{}
	for _, row := range r.Rows {
		if row.Method == string(fragile.DefaultMethod) && row.Unchanged < row.Models {
			ours[key{row.Subject, row.Attack.Label}] = row
		}
	}
	fmt.Fprint(w, "### Summary over every model and attack\n\n")
	fmt.Fprintf(w, "Rows: the %d (model, attack) configurations in which at least one attacked model changed.\n\n", len(ours))
	fmt.Fprintf(w, "| method | detected models | change rate: lowest row, mean, highest row | mean first-flip queries: worst row | rows where it beats %s on change rate / first flip (at the tables' precision) |\n|---|---:|---|---:|---|\n", fragile.DefaultMethod)
	for _, m := range r.Methods {
		detected, changed, rows, beats, faster := 0, 0, 0, 0, 0
		lo, hi, sum, worst := math.Inf(1), math.Inf(-1), 0.0, 0.0
		missed := false
		for _, row := range r.Rows {
			if row.Method != string(m) || row.Unchanged == row.Models {
				continue
			}
			rows++
			detected += row.Detected
			changed += row.Models - row.Unchanged
			lo, hi, sum = math.Min(lo, row.ChangeRate), math.Max(hi, row.ChangeRate), sum+row.ChangeRate
			if math.IsNaN(row.FirstFlip) {
				missed = true
			} else {
				worst = math.Max(worst, row.FirstFlip)
			}
			if o, ok := ours[key{row.Subject, row.Attack.Label}]; ok && m != fragile.DefaultMethod {
				// Compared as the tables print them: three seeds do not resolve smaller
				// differences, and a reader must be able to find the row.
				if roundTo(row.ChangeRate, 2) > roundTo(o.ChangeRate, 2) {
					beats++
				}
				if !math.IsNaN(row.FirstFlip) && (math.IsNaN(o.FirstFlip) || roundTo(row.FirstFlip, 1) < roundTo(o.FirstFlip, 1)) {
					faster++
				}
			}
		}
		if rows == 0 {
			continue
		}
		worstText := fmt.Sprintf("%.1f", worst)
		if missed {
			worstText = "never, on some rows"
		}
		against := fmt.Sprintf("%d / %d", beats, faster)
		if m == fragile.DefaultMethod {
			against = "(ours)"
		}
		fmt.Fprintf(w, "| %s | %d/%d | %.2f, %.2f, %.2f | %s | %s |\n", m, detected, changed, lo, sum/float64(rows), hi, worstText, against)
	}
	fmt.Fprintln(w)
}

// Issue 11's acceptance goals for the default method on every model.
const (
	goalChangeRate    = 0.85
	goalFirstFlip     = 1.5
	goalSingleWeights = 0.9
)

// acceptance writes, per model, issue 11's acceptance lines for the default method:
// every changed model detected (single-weight changes apart: their rate is the
// figure), the mean change rate and mean first flip over the rows, and the false
// alarms of its benign controls.
func (r *Report) acceptance(w io.Writer) {
	fmt.Fprintf(w, "### Acceptance per model (%s)\n\n", fragile.DefaultMethod)
	fmt.Fprintf(w, "Goals: every changed model detected; single-weight changes detected at least %.0f%%; mean change rate at least %.2f; mean first flip within %.1f queries; no false alarm. Means over the attacks (rows) that changed a model; a row with no detection has no first flip and counts as a miss.\n\n", 100*goalSingleWeights, goalChangeRate, goalFirstFlip)
	fmt.Fprint(w, "| model | changed models detected (single weight apart) | single-weight changes detected | mean change rate | mean first flip | false alarms | goals met |\n|---|---:|---:|---:|---:|---:|---|\n")
	for _, s := range r.Subjects {
		detected, changed, singleHit, singleAll, rows, missed := 0, 0, 0, 0, 0, false
		rate, flip := 0.0, 0.0
		for _, row := range r.Rows {
			if row.Subject != s.Name || row.Method != string(fragile.DefaultMethod) || row.Unchanged == row.Models {
				continue
			}
			rows++
			rate += row.ChangeRate
			if math.IsNaN(row.FirstFlip) {
				missed = true
			} else {
				flip += row.FirstFlip
			}
			if row.Attack.Class == "single-weight" {
				singleHit, singleAll = singleHit+row.Detected, singleAll+row.Models-row.Unchanged
			} else {
				detected, changed = detected+row.Detected, changed+row.Models-row.Unchanged
			}
		}
		if rows == 0 {
			continue
		}
		alarms, checks := 0, 0
		for _, c := range r.Controls {
			if c.Subject == s.Name && c.Method == string(fragile.DefaultMethod) {
				checks++
				if c.Mismatched > 0 || c.Err != "" {
					alarms++
				}
			}
		}
		rate /= float64(rows)
		flipText := fmt.Sprintf("%.2f", flip/float64(rows))
		if missed {
			flipText = "never, on some rows"
		}
		single := "none run"
		singleOK := true
		if singleAll > 0 {
			single = fmt.Sprintf("%d/%d (%.0f%%)", singleHit, singleAll, 100*float64(singleHit)/float64(singleAll))
			singleOK = float64(singleHit) >= goalSingleWeights*float64(singleAll)
		}
		var unmet []string
		if detected < changed {
			unmet = append(unmet, "detection")
		}
		if !singleOK {
			unmet = append(unmet, "single weight")
		}
		if rate < goalChangeRate {
			unmet = append(unmet, "change rate")
		}
		if missed || flip/float64(rows) > goalFirstFlip {
			unmet = append(unmet, "first flip")
		}
		if alarms > 0 {
			unmet = append(unmet, "false alarms")
		}
		verdict := "all"
		if len(unmet) > 0 {
			verdict = "not: " + strings.Join(unmet, ", ")
		}
		fmt.Fprintf(w, "| %s | %d/%d | %s | %.2f | %s | %d/%d | %s |\n", s.Name, detected, changed, single, rate, flipText, alarms, checks, verdict)
	}
	fmt.Fprintln(w)
}

func roundTo(v float64, decimals int) float64 {
	scale := math.Pow(10, float64(decimals))
	return math.Round(v*scale) / scale
}

// FalseAlarms counts benign controls in which any trigger flipped or that failed.
func (r *Report) FalseAlarms() int {
	n := 0
	for _, c := range r.Controls {
		if c.Mismatched > 0 || c.Err != "" {
			n++
		}
	}
	return n
}

// rowsOf groups a subject's rows by attack, in run order, one entry per method.
func (r *Report) rowsOf(subject string) [][]Row {
	var out [][]Row
	for i := 0; i < len(r.Rows); i += len(r.Methods) {
		if r.Rows[i].Subject == subject {
			out = append(out, r.Rows[i:i+len(r.Methods)])
		}
	}
	return out
}

// Plots writes, per subject and plotted attack series, the change rate against the
// attack strength for every method; it returns the files written.
func (r *Report) Plots(dir string) ([]string, error) {
	var files []string
	for si, s := range r.Subjects {
		series := map[string]map[string]plotter.XYs{} // series -> method -> points
		units := map[string]string{}
		var names []string
		for _, row := range r.Rows {
			if row.Subject != s.Name || row.Attack.Series == "" || row.Unchanged == row.Models {
				continue // not plotted, or no model changed: no change rate to show
			}
			if series[row.Attack.Series] == nil {
				series[row.Attack.Series] = map[string]plotter.XYs{}
				units[row.Attack.Series] = row.Attack.Unit
				names = append(names, row.Attack.Series)
			}
			series[row.Attack.Series][row.Method] = append(series[row.Attack.Series][row.Method], plotter.XY{X: row.Attack.Strength, Y: row.ChangeRate})
		}
		for _, name := range names {
			if !plottable(series[name]) {
				continue
			}
			p := plot.New()
			p.Title.Text = fmt.Sprintf("%s: %s", s.Name, name)
			p.X.Label.Text = units[name] + " (log scale)"
			p.Y.Label.Text = "change rate"
			p.X.Scale = plot.LogScale{}
			p.X.Tick.Marker = strengthTicks(series[name])
			// The axis runs past 1 to leave a band above every line for the legend; the
			// ticks stop at 1, the largest change rate there is.
			p.Y.Min, p.Y.Max = 0, 1.4
			p.Y.Tick.Marker = plot.ConstantTicks{{Value: 0, Label: "0"}, {Value: 0.25, Label: "0.25"}, {Value: 0.5, Label: "0.5"}, {Value: 0.75, Label: "0.75"}, {Value: 1, Label: "1"}}
			p.Legend.Top = true
			methods := make([]string, 0, len(series[name]))
			for m := range series[name] {
				methods = append(methods, m)
			}
			sort.Strings(methods)
			for i, m := range methods {
				pts := series[name][m]
				sort.Slice(pts, func(a, b int) bool { return pts[a].X < pts[b].X })
				line, points, err := plotter.NewLinePoints(pts)
				if err != nil {
					return nil, err
				}
				line.Color = plotutil.Color(i)
				line.Width = vg.Points(1.5)
				points.Color = line.Color
				points.Shape = plotutil.Shape(i)
				p.Add(line, points)
				p.Legend.Add(m, line, points)
			}
			p.Add(plotter.NewGrid())
			file := filepath.Join(dir, fmt.Sprintf("change-rate-%d-%s.png", si, slug(name)))
			if err := p.Save(6*vg.Inch, 4*vg.Inch, file); err != nil {
				return nil, err
			}
			files = append(files, file)
		}
	}
	return files, nil
}

// strengthTicks labels exactly the strengths measured: log ticks would label only
// the powers of ten, one of the three noise levels.
func strengthTicks(byMethod map[string]plotter.XYs) plot.ConstantTicks {
	seen := map[float64]bool{}
	var ticks plot.ConstantTicks
	for _, pts := range byMethod {
		for _, p := range pts {
			if !seen[p.X] {
				seen[p.X] = true
				ticks = append(ticks, plot.Tick{Value: p.X, Label: fmt.Sprintf("%g", p.X)})
			}
		}
	}
	sort.Slice(ticks, func(a, b int) bool { return ticks[a].Value < ticks[b].Value })
	return ticks
}

// plottable reports whether a series has at least two distinct strengths, which a
// line on a log axis needs.
func plottable(byMethod map[string]plotter.XYs) bool {
	for _, pts := range byMethod {
		seen := map[float64]bool{}
		for _, p := range pts {
			seen[p.X] = true
		}
		return len(seen) > 1
	}
	return false
}

func slug(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteRune(c)
		case c == '.':
		default:
			b.WriteRune('-')
		}
	}
	return b.String()
}
