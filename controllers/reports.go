package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
	"github.com/fragile-operator/fragile-operator/pkg/contract"
)

// termination is what a finished Job's container left behind: its termination message and
// exit status. The controller never reads logs.
type termination struct {
	found      bool
	message    string
	exitCode   int32
	finishedAt time.Time
}

// jobRun is a Job together with what it reported.
type jobRun struct {
	job        *batchv1.Job
	finished   bool
	failed     bool      // the Job's Failed condition, for explaining a missing report
	failReason string    // the Failed condition's reason and message
	finishedAt time.Time // when the Job finished
	term       termination
}

// readTermination finds the report of a finished Job: first on the Job itself (copied there by
// an earlier reconcile), else in the newest terminated container status of its Pods. A report
// found on a Pod should be copied to the Job so that it outlives the Pod: copy is that write,
// left to the caller so that it can share a round trip with the status update.
func (r *ModelWatermarkReconciler) readTermination(ctx context.Context, job *batchv1.Job) (t termination, copy func(context.Context) error, err error) {
	if msg, ok := job.Annotations[annotationTerminationMessage]; ok {
		code, err := strconv.ParseInt(job.Annotations[annotationExitCode], 10, 32)
		if err == nil {
			return termination{found: true, message: msg, exitCode: int32(code)}, nil, nil
		}
	}

	// Through an index: a label selector would scan every cached Pod of the namespace.
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(job.Namespace), client.MatchingFields{podJobKey: job.Name}); err != nil {
		return termination{}, nil, err
	}
	var best termination
	for i := range pods.Items {
		for _, cs := range pods.Items[i].Status.ContainerStatuses {
			t := cs.State.Terminated
			if cs.Name != containerName || t == nil {
				continue
			}
			if !best.found || t.FinishedAt.After(best.finishedAt) {
				best = termination{found: true, message: t.Message, exitCode: t.ExitCode, finishedAt: t.FinishedAt.Time}
			}
		}
	}
	if !best.found {
		return best, nil, nil
	}

	// A merge patch touches only our two annotations, so it cannot conflict with the Job
	// controller's status writes.
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		annotationTerminationMessage: best.message,
		annotationExitCode:           strconv.Itoa(int(best.exitCode)),
	}}})
	if err != nil {
		return termination{}, nil, err
	}
	target := job.DeepCopy()
	copy = func(ctx context.Context) error {
		err := r.Patch(ctx, target, client.RawPatch(types.MergePatchType, patch))
		return client.IgnoreNotFound(err)
	}
	return best, copy, nil
}

// observeJob classifies a Job and, once it has finished, reads its report. Writes it wants
// done (copying the report onto the Job) are appended to o.sideWrites.
func (r *ModelWatermarkReconciler) observeJob(ctx context.Context, o *observation, job *batchv1.Job) (jobRun, error) {
	run := jobRun{job: job}
	run.finished, run.failed, run.finishedAt, run.failReason = jobFinished(job)
	if !run.finished {
		return run, nil
	}
	t, copy, err := r.readTermination(ctx, job)
	if err != nil {
		return run, err
	}
	if copy != nil {
		o.sideWrites = append(o.sideWrites, copy)
	}
	// finishedAt stays the Job's own finish time even when the container's is known: the
	// container time is lost once the report moves to the Job, and status must not change then.
	run.term = t
	return run, nil
}

// verdict is a finished verification Job interpreted. Its result is Failed whenever anything
// about the report is missing, malformed or inconsistent: only a well-formed "tampered" report
// whose exit status agrees (1) counts as tampering, so that no crash, timeout or bug in the
// report path can raise a false alarm.
type verdict struct {
	run           jobRun
	result        fragilev1alpha1.VerificationResult
	total         int32
	mismatched    int32
	modelDigest   string
	digestMatches bool
	message       string
	// endpoint names the served model the Job checked; empty when it read the artifact.
	endpoint string
	// cause is the report's classification of a failed run (contract.Cause*), if any.
	cause string
}

func (v verdict) conclusive() bool { return v.result != fragilev1alpha1.VerificationFailed }

// maxMessage bounds report text copied into status and events.
const maxMessage = 1024

func interpretVerification(run jobRun) verdict {
	v := verdict{run: run, result: fragilev1alpha1.VerificationFailed}
	if !run.term.found {
		v.message = "the verification Job finished without a termination message from its Pod"
		if run.failReason != "" {
			v.message += " (Job " + run.failReason + ")"
		}
		return v
	}
	var rep contract.VerifyReport
	if err := json.Unmarshal([]byte(run.term.message), &rep); err != nil {
		v.message = "the verification Job's termination message is not a JSON report"
		return v
	}
	v.total, v.mismatched = int32(rep.Total), int32(rep.Mismatched)
	v.modelDigest, v.digestMatches = rep.ModelDigest, rep.DigestMatches
	v.endpoint = clip(rep.Endpoint)
	code := int32(rep.Result.ExitCode())
	switch rep.Result {
	case contract.ResultIntact, contract.ResultTampered:
		if run.term.exitCode != code {
			v.message = fmt.Sprintf("the report says %q but the container exited with status %d, not %d",
				rep.Result, run.term.exitCode, code)
			return v
		}
		if rep.Total <= 0 || rep.Mismatched < 0 || rep.Mismatched > rep.Total ||
			(rep.Result == contract.ResultIntact) != (rep.Mismatched == 0) {
			v.message = fmt.Sprintf("the report is inconsistent: result %q with %d of %d triggers mismatched",
				rep.Result, rep.Mismatched, rep.Total)
			return v
		}
		if rep.Result == contract.ResultIntact {
			v.result = fragilev1alpha1.VerificationIntact
		} else {
			v.result = fragilev1alpha1.VerificationTampered
		}
		return v
	case contract.ResultError:
		v.message, v.cause = "verification could not run", rep.Cause
		if rep.Message != "" {
			v.message += ": " + rep.Message
		}
		return v
	}
	v.message = fmt.Sprintf("the report has an unknown result %q", rep.Result)
	return v
}

// training is a finished training Job interpreted.
type training struct {
	run        jobRun
	ok         bool
	report     contract.WatermarkReport
	problem    string // why ok is false, for the TrainingFailed message
	keyMatchPc int32
}

func interpretTraining(run jobRun, wantTriggers int32) training {
	t := training{run: run}
	if !run.term.found {
		t.problem = "the training Job finished without a termination message from its Pod"
		if run.failReason != "" {
			t.problem += " (Job " + run.failReason + ")"
		}
		return t
	}
	if err := json.Unmarshal([]byte(run.term.message), &t.report); err != nil {
		t.problem = "the training Job's termination message is not a JSON report"
		return t
	}
	t.keyMatchPc = int32(t.report.KeyMatch*100 + 0.5)
	switch {
	case t.report.Result == contract.WatermarkFailed:
		t.problem = "training failed"
		if t.report.Message != "" {
			t.problem += ": " + t.report.Message
		}
	case t.report.Result != contract.WatermarkSucceeded:
		t.problem = fmt.Sprintf("the training report has an unknown result %q", t.report.Result)
	case run.term.exitCode != 0 || run.failed:
		t.problem = fmt.Sprintf("the training report says %q but the container exited with status %d",
			t.report.Result, run.term.exitCode)
	case int32(t.report.Triggers) != wantTriggers:
		t.problem = fmt.Sprintf("the training Job sealed %d triggers, the spec asks for %d",
			t.report.Triggers, wantTriggers)
	default:
		t.ok = true
	}
	return t
}

// clip shortens text from a Job for status and events: one line, at most maxMessage bytes,
// valid UTF-8.
func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= maxMessage {
		return s
	}
	s = s[:maxMessage-3]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}
