package controllers

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
)

// runningTraining is the training Job of name that has not finished, or nil.
func (h *harness) runningTraining(name string) *batchv1.Job {
	h.t.Helper()
	for _, j := range h.jobs(name, componentTraining) {
		if finished, _, _, _ := jobFinished(&j); !finished {
			return j.DeepCopy()
		}
	}
	return nil
}

// TestTrainingRetriesWithBackoff: a training run that fails twice then succeeds ends
// Watermarked=True after three attempts, each its own Job, started only once its backoff (30 s,
// then 60 s) has passed; every attempt shows in the events; reconciling again at any point, as a
// restarted manager does, never creates a second Job for an attempt.
func TestTrainingRetriesWithBackoff(t *testing.T) {
	const name = "mnist"
	mw := newMW(name)
	hash := watermarkHash(mw)
	h := newHarness(t, mw)
	h.reconcile(name)

	var events []string
	failAt := func(at time.Time, attempt int32) {
		t.Helper()
		h.clock.SetTime(at)
		job := h.runningTraining(name)
		if job == nil || job.Name != trainingJobName(mw, hash, attempt) {
			t.Fatalf("attempt %d: running training Job %v, want %s", attempt, job, trainingJobName(mw, hash, attempt))
		}
		if got := job.Annotations[annotationAttempt]; got != itoa(int64(attempt)) {
			t.Errorf("attempt annotation %q, want %d", got, attempt)
		}
		h.finish(job, trainedFailed("model URL http://models/m.onnx answered 503 Service Unavailable"))
		h.reconcile(name)
		h.reconcile(name) // a second look changes nothing
	}

	// Attempt 1 fails at t0: the retry waits 30 s.
	failAt(t0, 1)
	c := findCond(h.mw(name).Status.Conditions, fragilev1alpha1.ConditionWatermarked)
	if c.Reason != fragilev1alpha1.ReasonTrainingBackoff || !strings.Contains(c.Message, "attempt 1 of 3") {
		t.Fatalf("after attempt 1: %s %q", c.Reason, c.Message)
	}
	h.clock.SetTime(t0.Add(29 * time.Second))
	if res := h.reconcile(name); res.RequeueAfter != time.Second {
		t.Errorf("1 s before the retry: RequeueAfter %v", res.RequeueAfter)
	}
	if n := len(h.jobs(name, componentTraining)); n != 1 {
		t.Fatalf("%d training Jobs before the backoff passed", n)
	}
	events = append(events, h.drainEvents()...)

	// Attempt 2 starts at t0+30s and fails at t0+40s: the retry waits 60 s.
	h.clock.SetTime(t0.Add(30 * time.Second))
	h.reconcile(name)
	h.reconcile(name)
	if c := findCond(h.mw(name).Status.Conditions, fragilev1alpha1.ConditionWatermarked); !strings.Contains(c.Message, "attempt 2 of 3") {
		t.Errorf("while attempt 2 runs: %q", c.Message)
	}
	failAt(t0.Add(40*time.Second), 2)
	if st := h.mw(name).Status.Training; st.Attempt != 2 || !st.NextAttemptTime.Time.Equal(t0.Add(100*time.Second)) {
		t.Errorf("after attempt 2: %+v, want the next attempt at t0+100s", st)
	}
	h.clock.SetTime(t0.Add(99 * time.Second))
	h.reconcile(name)
	if n := len(h.jobs(name, componentTraining)); n != 2 {
		t.Fatalf("%d training Jobs before the second backoff passed", n)
	}

	// Attempt 3 succeeds.
	h.clock.SetTime(t0.Add(100 * time.Second))
	h.reconcile(name)
	h.seal(name)
	job := h.runningTraining(name)
	if job == nil || job.Name != trainingJobName(mw, hash, 3) {
		t.Fatalf("attempt 3 not running: %v", jobNames(h.jobs(name, componentTraining)))
	}
	h.finish(job, trainedOK(100))
	h.reconcile(name)
	h.reconcile(name)
	events = append(events, h.drainEvents()...)

	st := h.mw(name).Status
	if c := findCond(st.Conditions, fragilev1alpha1.ConditionWatermarked); c.Status != condTrue {
		t.Fatalf("Watermarked %s/%s %q after the third attempt succeeded", c.Status, c.Reason, c.Message)
	}
	if st.Training.Attempt != 3 || st.Training.NextAttemptTime != nil || st.Training.JobName != job.Name {
		t.Errorf("training status %+v", st.Training)
	}
	want := []string{
		trainingJobName(mw, hash, 1), trainingJobName(mw, hash, 2), trainingJobName(mw, hash, 3),
	}
	slices.Sort(want)
	if d := cmp.Diff(want, jobNames(h.jobs(name, componentTraining))); d != "" {
		t.Errorf("training Jobs (-want +got):\n%s", d)
	}
	wantEvents := []string{
		"Normal TrainingInProgress", "Warning TrainingBackoff",
		"Normal TrainingInProgress", "Warning TrainingBackoff",
		"Normal TrainingInProgress", "Normal Watermarked",
	}
	if d := cmp.Diff(wantEvents, events); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}

// TestRetryDelay: the backoff doubles from retryDelaySeconds and stops at an hour.
func TestRetryDelay(t *testing.T) {
	mw := newMW("m")
	mw.Spec.Training.RetryDelaySeconds = 600
	for n, want := range map[int32]time.Duration{1: 10 * time.Minute, 2: 20 * time.Minute, 3: 40 * time.Minute, 4: time.Hour, 9: time.Hour} {
		if got := retryDelay(mw, n); got != want {
			t.Errorf("retryDelay after attempt %d = %v, want %v", n, got, want)
		}
	}
	if got := retryDelay(newMW("d"), 2); got != time.Minute {
		t.Errorf("default retryDelay after attempt 2 = %v, want 1m", got)
	}
}

// TestSuspendedDuringBackoff: a suspended resource does not start its next attempt, and says so.
func TestSuspendedDuringBackoff(t *testing.T) {
	h := newHarness(t, newMW("mnist"))
	h.train("mnist", trainedFailed("evicted"))
	mw := h.mw("mnist")
	mw.Spec.Suspend = true
	if err := h.c.Update(h.ctx, mw); err != nil {
		t.Fatal(err)
	}
	h.clock.SetTime(t0.Add(time.Hour))
	h.reconcile("mnist")
	if n := len(h.jobs("mnist", componentTraining)); n != 1 {
		t.Errorf("%d training Jobs while suspended", n)
	}
	c := findCond(h.mw("mnist").Status.Conditions, fragilev1alpha1.ConditionWatermarked)
	if c.Reason != fragilev1alpha1.ReasonTrainingBackoff || !strings.Contains(c.Message, "once spec.suspend is false") {
		t.Errorf("Watermarked %s %q", c.Reason, c.Message)
	}
}
