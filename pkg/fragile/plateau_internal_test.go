package fragile

import (
	"math"
	"testing"
)

// TestPlateauRule: a run that keeps finding new best key matches keeps its step
// size; a stall of plateauSteps steps cuts it, the patience restarts after each
// cut, and the cuts stop at plateauCuts.
func TestPlateauRule(t *testing.T) {
	p := plateauRule{rate: 1e-3}
	for step := 1; step <= 100; step++ {
		if p.observe(step, step) {
			t.Fatalf("step %d: cut while the key match rises", step)
		}
	}
	p = plateauRule{rate: 1e-3}
	var cuts []int
	for step := 1; step <= 300; step++ {
		matched := min(step, 10) // a new best until step 10, then a stall
		if p.observe(step, matched) {
			cuts = append(cuts, step)
		}
	}
	want := []int{10 + plateauSteps, 10 + 2*plateauSteps, 10 + 3*plateauSteps, 10 + 4*plateauSteps}
	if len(cuts) != len(want) || plateauCuts != len(want) {
		t.Fatalf("cuts at steps %v, want %v", cuts, want)
	}
	for i := range want {
		if cuts[i] != want[i] {
			t.Fatalf("cuts at steps %v, want %v", cuts, want)
		}
	}
	if got, want := p.rate, 1e-3*math.Pow(plateauFactor, plateauCuts); math.Abs(got-want) > 1e-12 {
		t.Errorf("final step size %g, want %g", got, want)
	}
	// A key match that falls back and returns to its old best is no progress.
	p = plateauRule{rate: 1e-3}
	p.observe(1, 50)
	for step := 2; step < 1+plateauSteps; step++ {
		p.observe(step, 40+step%11)
	}
	if !p.observe(1+plateauSteps, 50) {
		t.Error("a key match back at its best after plateauSteps steps did not cut the step size")
	}
}
