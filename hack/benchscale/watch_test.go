package main

import (
	"slices"
	"testing"
	"time"
)

// TestSchedule: a slot is met only by a verification of that slot that finished within
// period + slack of it; late, unfinished and absent verifications are missed, and slots whose
// deadline is after the end are not judged yet.
func TestSchedule(t *testing.T) {
	const period, slack = 100 * time.Second, 10 * time.Second
	s0 := time.Unix(1_000_000, 0)
	at := func(d time.Duration) time.Time { return s0.Add(d) }
	w := newJobWatch()
	add := func(mw string, slot, created, finished time.Time) {
		r := &jobRecord{component: componentVerification, mw: mw, slot: slot, created: created, finished: finished}
		w.jobs[mw+slot.String()] = r
		if w.byMW[mw] == nil {
			w.byMW[mw] = map[int64]*jobRecord{}
		}
		w.byMW[mw][slot.Unix()] = r
	}
	// a: the first verification, slot 1 on time, slot 2 finished 5 s after its deadline.
	add("a", at(0), at(1*time.Second), at(3*time.Second))
	add("a", at(period), at(period+2*time.Second), at(period+50*time.Second))
	add("a", at(2*period), at(2*period+90*time.Second), at(3*period+slack+5*time.Second))
	// b: slot 1 never started, slot 2 still running at the end.
	add("b", at(0), at(0), at(2*time.Second))
	add("b", at(2*period), at(2*period+time.Second), time.Time{})
	// c: slot 3 finished early, before the end, though its deadline is after it: judged, met.
	add("c", at(0), at(0), at(time.Second))
	add("c", at(period), at(period), at(period+time.Second))
	add("c", at(2*period), at(2*period), at(2*period+time.Second))
	add("c", at(3*period), at(3*period), at(3*period+time.Second))
	end := at(3*period + slack + 30*time.Second) // slot 3's deadline (4P + slack) has not passed
	got := w.schedule(map[string]time.Time{"a": at(0), "b": at(0), "c": at(0)}, period, slack, end)
	if got.slots != 7 || got.missed != 3 || got.skipped != 1 {
		t.Errorf("slots %d, missed %d, skipped %d; want 7, 3, 1", got.slots, got.missed, got.skipped)
	}
	if len(got.startLate) != 6 || len(got.finishLate) != 5 {
		t.Errorf("start delays %v, finish delays %v: want 6 and 5 of them", got.startLate, got.finishLate)
	}
	if !slices.Contains(got.finishLate, 50) {
		t.Errorf("finish delays %v: want one of 50 s", got.finishLate)
	}
}

func TestPeakRate(t *testing.T) {
	w := newJobWatch()
	base := time.Unix(2_000_000, 0)
	for i, d := range []int{0, 0, 1, 1, 1, 30, 31} {
		w.jobs[string(rune('a'+i))] = &jobRecord{component: componentVerification, created: base.Add(time.Duration(d) * time.Second)}
	}
	if got := w.peakRate(componentVerification, 10*time.Second); got != 0.5 {
		t.Errorf("peak rate %v per second, want 5 Jobs in 10 s = 0.5", got)
	}
	if got := w.spanRate(componentVerification); got != 6.0/31 {
		t.Errorf("span rate %v, want 6/31", got)
	}
}
