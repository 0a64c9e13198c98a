// Package eval runs the detection benchmark of REFERENCE.md section 3: protected
// models x attacks x trigger methods, with fixed seeds, measuring detection rate,
// change rate, first-flip queries and the attacked model's accuracy, plus the benign
// controls that must never alarm (a re-serialised file, float64 inference, and an
// independent runtime). It renders a markdown report and PNG plots.
package eval
