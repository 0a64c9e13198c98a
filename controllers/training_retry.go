package controllers

import (
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
)

// Training retries. Each attempt is its own Job, named after the watermark hash and the attempt
// number, so that the attempts a resource has made are the Jobs it owns: a manager that restarts
// mid-training or mid-backoff rebuilds the attempt count and the next attempt's time from them,
// and a create that races a stale cache meets AlreadyExists instead of making a second Job.
// The Job controller's own backoffLimit stays 0: its retries are invisible to the condition, and
// it would rerun a Pod whose report already said the run cannot succeed without saying when.

// maxRetryDelay caps the exponential backoff between training attempts.
const maxRetryDelay = time.Hour

// attemptOf is a training Job's attempt number, 1 for Jobs that predate retries.
func attemptOf(job *batchv1.Job) int32 {
	n, err := strconv.ParseInt(job.Annotations[annotationAttempt], 10, 32)
	if err != nil || n < 1 {
		return 1
	}
	return int32(n)
}

// maxAttempts is spec.training.maxAttempts, defaulted as the schema does.
func maxAttempts(mw *fragilev1alpha1.ModelWatermark) int32 {
	if n := mw.Spec.Training.MaxAttempts; n > 0 {
		return n
	}
	return 3
}

// retryDelay is the wait after failed attempt n (from 1): retryDelaySeconds doubled n-1 times,
// capped at maxRetryDelay.
func retryDelay(mw *fragilev1alpha1.ModelWatermark, n int32) time.Duration {
	d := time.Duration(mw.Spec.Training.RetryDelaySeconds) * time.Second
	if d <= 0 {
		d = 30 * time.Second
	}
	for i := int32(1); i < n && d < maxRetryDelay; i++ {
		d *= 2
	}
	return min(d, maxRetryDelay)
}

// nextTrainingAttempt says which training attempt should exist next and from when: attempt 1
// at once when there is none, attempt n+1 after the backoff when attempt n failed and the spec
// allows another, and 0 when no attempt is to start (one runs, succeeded, or the last failed).
func (o *observation) nextTrainingAttempt() (attempt int32, due time.Time) {
	if o.training == nil {
		return 1, time.Time{}
	}
	n := attemptOf(o.training.job)
	if !o.training.finished || o.result.ok || n >= maxAttempts(o.mw) {
		return 0, time.Time{}
	}
	return n + 1, o.training.finishedAt.Add(retryDelay(o.mw, n))
}

// retrying reports whether the newest attempt failed and another one is scheduled.
func (o *observation) retrying() bool {
	return !o.nextAttempt.IsZero()
}
