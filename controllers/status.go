package controllers

import (
	"context"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
	"github.com/fragile-operator/fragile-operator/pkg/contract"
)

// observation is everything one reconcile learned about a ModelWatermark's world. Status is a
// pure function of it (buildStatus), which is what lets unit tests check every branch without
// an API server.
type observation struct {
	mw   *fragilev1alpha1.ModelWatermark
	now  time.Time
	hash string

	// The key Secret: its name, whether the operator generates it, whether it is missing.
	keyName      string
	keyGenerated bool
	keyMissing   bool

	// rejected is set when the model location or a Job built from the spec was refused.
	rejected string

	// bundle is the bundle Secret's metadata, nil when the Secret does not exist.
	bundle *metav1.PartialObjectMetadata

	// training is the training Job of the current watermark, nil when there is none; result is
	// set once it has finished.
	training *jobRun
	result   *training

	// verdicts are the finished verification Jobs of the current watermark, newest first;
	// activeVerification is the one still running, if any.
	verdicts           []verdict
	activeVerification *batchv1.Job

	// nextVerification is when the next verification is due; zero when none is scheduled.
	nextVerification time.Time

	// nextAttempt is when the next training attempt starts after a failed one; zero when no
	// retry is scheduled.
	nextAttempt time.Time

	// watermarked is the evaluated Watermarked condition; verification waits for it.
	watermarked metav1.Condition

	// newKey is a generated key Secret still to be created; sideWrites are writes that no
	// later step depends on (report copies), issued together with the status update.
	newKey     *corev1.Secret
	sideWrites []func(context.Context) error
}

// bundleSealed reports whether the bundle Secret holds a sealed bundle (of any watermark).
func (o *observation) bundleSealed() bool {
	return o.bundle != nil && o.bundle.Annotations[contract.AnnotationBundleDigest] != ""
}

// newestConclusive is the newest verification that reached a verdict.
func (o *observation) newestConclusive() *verdict {
	for i := range o.verdicts {
		if o.verdicts[i].conclusive() {
			return &o.verdicts[i]
		}
	}
	return nil
}

// policy is one check of a chain, after cert-manager's certificate policies: it either decides
// the condition (decided true) or lets the next policy look.
type policy func(o *observation) (status metav1.ConditionStatus, reason, message string, decided bool)

// evaluate runs a chain and returns the condition of the first policy that decides. The last
// policy of every chain always decides.
func evaluate(conditionType string, chain []policy, o *observation) metav1.Condition {
	for _, p := range chain {
		if status, reason, message, ok := p(o); ok {
			return metav1.Condition{Type: conditionType, Status: status, Reason: reason, Message: message}
		}
	}
	panic("condition chain for " + conditionType + " decided nothing")
}

const (
	condTrue    = metav1.ConditionTrue
	condFalse   = metav1.ConditionFalse
	condUnknown = metav1.ConditionUnknown
)

// watermarkedChain decides the Watermarked condition.
var watermarkedChain = []policy{
	func(o *observation) (metav1.ConditionStatus, string, string, bool) {
		if !o.keyMissing {
			return "", "", "", false
		}
		if o.keyGenerated {
			return condFalse, fragilev1alpha1.ReasonKeySecretNotFound, fmt.Sprintf(
				"the generated key Secret %s was deleted after a bundle was sealed with it, so the watermark can no "+
					"longer be verified; the operator does not silently re-watermark a model that may have been changed "+
					"meanwhile. Delete Secret %s to watermark the model afresh with a new key",
				o.keyName, bundleSecretName(o.mw)), true
		}
		return condFalse, fragilev1alpha1.ReasonKeySecretNotFound, fmt.Sprintf(
			"Secret %s named by spec.keySecretRef does not exist in namespace %s", o.keyName, o.mw.Namespace), true
	},
	func(o *observation) (metav1.ConditionStatus, string, string, bool) {
		if o.rejected == "" {
			return "", "", "", false
		}
		return condFalse, fragilev1alpha1.ReasonJobRejected, clip(o.rejected), true
	},
	func(o *observation) (metav1.ConditionStatus, string, string, bool) {
		if o.training != nil {
			return "", "", "", false
		}
		if o.mw.Spec.Suspend {
			return condUnknown, fragilev1alpha1.ReasonSuspended, "spec.suspend is true, so training has not started", true
		}
		return condUnknown, fragilev1alpha1.ReasonTrainingPending, "no training Job exists yet for the current spec", true
	},
	func(o *observation) (metav1.ConditionStatus, string, string, bool) {
		if o.training.finished {
			return "", "", "", false
		}
		msg := fmt.Sprintf("training Job %s is running", o.training.job.Name)
		if n := attemptOf(o.training.job); n > 1 {
			msg = fmt.Sprintf("training Job %s (attempt %d of %d) is running", o.training.job.Name, n, maxAttempts(o.mw))
		}
		if p := o.progress(); p != "" {
			msg += ": " + p
		}
		return condUnknown, fragilev1alpha1.ReasonTrainingInProgress, msg, true
	},
	func(o *observation) (metav1.ConditionStatus, string, string, bool) {
		if o.result.ok {
			return "", "", "", false
		}
		n, limit := attemptOf(o.training.job), maxAttempts(o.mw)
		if o.retrying() {
			when := "at " + o.nextAttempt.UTC().Format(time.RFC3339)
			if o.mw.Spec.Suspend {
				when = "once spec.suspend is false"
			}
			return condUnknown, fragilev1alpha1.ReasonTrainingBackoff, clip(fmt.Sprintf(
				"training attempt %d of %d (Job %s) failed: %s; attempt %d starts %s",
				n, limit, o.training.job.Name, o.result.problem, n+1, when)), true
		}
		return condFalse, fragilev1alpha1.ReasonTrainingFailed, clip(fmt.Sprintf(
			"training Job %s did not produce a watermark (attempt %d of %d, no retries left): %s. Delete the "+
				"training Jobs to start again, or change the spec", o.training.job.Name, n, limit, o.result.problem)), true
	},
	func(o *observation) (metav1.ConditionStatus, string, string, bool) {
		pin := o.mw.Spec.Model.SHA256
		if pin == "" || o.result.report.ModelDigest == "sha256:"+pin {
			return "", "", "", false
		}
		return condFalse, fragilev1alpha1.ReasonDigestMismatch, fmt.Sprintf(
			"training Job %s read a model with digest %s, but spec.model.sha256 pins sha256:%s; a watermark of "+
				"unapproved bytes is not used", o.training.job.Name, orNone(o.result.report.ModelDigest), pin), true
	},
	func(o *observation) (metav1.ConditionStatus, string, string, bool) {
		if o.bundle != nil && o.bundle.Annotations[contract.AnnotationWatermarkHash] == o.hash && o.bundleSealed() {
			return "", "", "", false
		}
		return condFalse, fragilev1alpha1.ReasonBundleMissing, fmt.Sprintf(
			"training Job %s succeeded, but Secret %s does not hold the bundle it sealed (deleted or overwritten); "+
				"delete the Job to train again", o.training.job.Name, bundleSecretName(o.mw)), true
	},
	func(o *observation) (metav1.ConditionStatus, string, string, bool) {
		r := o.result.report
		msg := fmt.Sprintf("%d triggers sealed into %s by training Job %s after %d steps",
			r.Triggers, bundlePlace(o.mw), o.training.job.Name, r.Steps)
		if r.KeyID != "" {
			msg += fmt.Sprintf(" (key %s)", r.KeyID)
		}
		return condTrue, fragilev1alpha1.ReasonWatermarked, msg, true
	},
}

// intactChain decides the Intact condition. Its first policy makes a tampering verdict sticky:
// a later verification that merely fails to run does not clear it.
var intactChain = []policy{
	func(o *observation) (metav1.ConditionStatus, string, string, bool) {
		v := o.newestConclusive()
		if v == nil || v.result != fragilev1alpha1.VerificationTampered {
			return "", "", "", false
		}
		msg := fmt.Sprintf("verification Job %s found %d of %d triggers with a changed label: the model's "+
			"weights are not the ones that were watermarked", v.run.job.Name, v.mismatched, v.total)
		if newest := o.verdicts[0]; newest.run.job != v.run.job {
			msg += fmt.Sprintf("; the newer verification Job %s reached no verdict (%s), which does not clear this",
				newest.run.job.Name, newest.message)
		}
		return condFalse, fragilev1alpha1.ReasonTamperDetected, clip(msg), true
	},
	func(o *observation) (metav1.ConditionStatus, string, string, bool) {
		if !o.keyMissing || o.watermarked.Reason != fragilev1alpha1.ReasonKeySecretNotFound {
			return "", "", "", false
		}
		return condUnknown, fragilev1alpha1.ReasonKeySecretNotFound,
			fmt.Sprintf("cannot verify without the key Secret %s", o.keyName), true
	},
	func(o *observation) (metav1.ConditionStatus, string, string, bool) {
		if o.watermarked.Status == condTrue {
			return "", "", "", false
		}
		return condUnknown, fragilev1alpha1.ReasonAwaitingWatermark, fmt.Sprintf(
			"nothing to verify until the model is watermarked (Watermarked is %s: %s)",
			o.watermarked.Status, o.watermarked.Reason), true
	},
	func(o *observation) (metav1.ConditionStatus, string, string, bool) {
		if len(o.verdicts) > 0 {
			return "", "", "", false
		}
		msg := "the first verification has not started"
		switch {
		case o.activeVerification != nil:
			msg = fmt.Sprintf("the first verification Job %s is running", o.activeVerification.Name)
		case o.mw.Spec.Suspend:
			msg = "spec.suspend is true, so the first verification has not started"
		case !o.nextVerification.IsZero():
			msg = "the first verification is due at " + o.nextVerification.UTC().Format(time.RFC3339)
		}
		return condUnknown, fragilev1alpha1.ReasonVerificationPending, msg, true
	},
	func(o *observation) (metav1.ConditionStatus, string, string, bool) {
		v := o.verdicts[0]
		if v.conclusive() {
			return "", "", "", false
		}
		reason, hint := failureReason(o.mw, v.cause)
		return condUnknown, reason, clip(fmt.Sprintf(
			"verification Job %s reached no verdict: %s. This says nothing about tampering; %sthe next "+
				"verification will try again", v.run.job.Name, v.message, hint)), true
	},
	func(o *observation) (metav1.ConditionStatus, string, string, bool) {
		v := o.verdicts[0]
		msg := fmt.Sprintf("all %d triggers kept their key labels in verification Job %s", v.total, v.run.job.Name)
		if !v.digestMatches {
			msg += fmt.Sprintf("; the model bytes (%s) differ from the watermarked file, as after a "+
				"re-serialisation that kept every weight", orNone(v.modelDigest))
		}
		return condTrue, fragilev1alpha1.ReasonIntact, msg, true
	},
}

// readyChain decides the summary Ready condition from the other two.
func readyChain(watermarked, intact metav1.Condition) []policy {
	borrow := func(c metav1.Condition) policy {
		return func(*observation) (metav1.ConditionStatus, string, string, bool) {
			if c.Status == condTrue {
				return "", "", "", false
			}
			return c.Status, c.Reason, c.Message, true
		}
	}
	return []policy{
		// Tampering outranks everything else that could be wrong.
		func(o *observation) (metav1.ConditionStatus, string, string, bool) {
			if intact.Reason != fragilev1alpha1.ReasonTamperDetected {
				return "", "", "", false
			}
			return intact.Status, intact.Reason, intact.Message, true
		},
		func(o *observation) (metav1.ConditionStatus, string, string, bool) {
			if !o.mw.Spec.Suspend {
				return "", "", "", false
			}
			return condFalse, fragilev1alpha1.ReasonSuspended, "spec.suspend is true: no training or verification " +
				"Jobs start, and Watermarked and Intact keep the last results", true
		},
		borrow(watermarked),
		borrow(intact),
		func(o *observation) (metav1.ConditionStatus, string, string, bool) {
			pin, v := o.mw.Spec.Model.SHA256, o.verdicts[0]
			if pin == "" || v.modelDigest == "sha256:"+pin {
				return "", "", "", false
			}
			return condFalse, fragilev1alpha1.ReasonDigestMismatch, fmt.Sprintf(
				"verification Job %s read model bytes with digest %s, but spec.model.sha256 pins sha256:%s",
				v.run.job.Name, orNone(v.modelDigest), pin), true
		},
		func(o *observation) (metav1.ConditionStatus, string, string, bool) {
			return condTrue, fragilev1alpha1.ReasonReady, fmt.Sprintf(
				"the model is watermarked and verification Job %s found it intact", o.verdicts[0].run.job.Name), true
		},
	}
}

// progress is the training Job's latest progress line, read from the bundle Secret.
func (o *observation) progress() string {
	if o.bundle == nil || o.bundle.Annotations[contract.AnnotationWatermarkHash] != o.hash {
		return ""
	}
	return clip(o.bundle.Annotations[contract.AnnotationTrainingProgress])
}

func orNone(digest string) string {
	if digest == "" {
		return "(not reported)"
	}
	return digest
}

// buildStatus rebuilds the whole status from the observation. Only the conditions'
// lastTransitionTime is carried over from the previous status, as the API conventions ask.
func buildStatus(o *observation, previous []metav1.Condition) fragilev1alpha1.ModelWatermarkStatus {
	mw := o.mw
	st := fragilev1alpha1.ModelWatermarkStatus{ObservedGeneration: mw.Generation}

	intact := evaluate(fragilev1alpha1.ConditionIntact, intactChain, o)
	ready := evaluate(fragilev1alpha1.ConditionReady, readyChain(o.watermarked, intact), o)
	conditions := make([]metav1.Condition, 0, 3)
	for _, c := range previous {
		if c.Type == fragilev1alpha1.ConditionWatermarked || c.Type == fragilev1alpha1.ConditionIntact ||
			c.Type == fragilev1alpha1.ConditionReady {
			conditions = append(conditions, c)
		}
	}
	for _, c := range []metav1.Condition{o.watermarked, intact, ready} {
		c.ObservedGeneration = mw.Generation
		c.LastTransitionTime = metav1.NewTime(o.now).Rfc3339Copy()
		meta.SetStatusCondition(&conditions, c)
	}
	st.Conditions = conditions

	if o.training != nil {
		j := o.training.job
		ts := &fragilev1alpha1.TrainingStatus{JobName: j.Name, Attempt: attemptOf(j), StartTime: j.Status.StartTime,
			NextAttemptTime: timePtr(o.nextAttempt)}
		if o.training.finished {
			ts.CompletionTime = timePtr(o.training.finishedAt)
			if o.result.run.term.found {
				ts.Steps = int32(o.result.report.Steps)
				ts.KeyMatchPercent = o.result.keyMatchPc
			}
		} else {
			ts.Progress = o.progress()
		}
		st.Training = ts
		if o.result != nil {
			st.ModelDigest = o.result.report.ModelDigest
		}
	}
	if o.watermarked.Status == condTrue {
		st.Bundle = &fragilev1alpha1.BundleStatus{
			Digest:    o.sealedDigest(),
			KeyID:     o.result.report.KeyID,
			SizeBytes: int64(o.result.report.BundleBytes),
		}
		if b := locateBundle(mw); b.kind == bundleInSecret {
			st.Bundle.SecretName, st.Bundle.Key = bundleSecretName(mw), contract.BundleDataKey
		} else {
			st.Bundle.URI = b.uri
		}
	}
	if len(o.verdicts) > 0 {
		v := o.verdicts[0]
		st.LastVerification = &fragilev1alpha1.VerificationStatus{
			JobName:       v.run.job.Name,
			Time:          metav1.NewTime(v.run.finishedAt).Rfc3339Copy(),
			Result:        v.result,
			DigestMatches: v.digestMatches,
			Message:       v.message,
		}
		if v.conclusive() {
			st.LastVerification.TotalTriggers = ptr.To(v.total)
			st.LastVerification.MismatchedTriggers = ptr.To(v.mismatched)
		}
		if v.modelDigest != "" {
			st.ModelDigest = v.modelDigest
		}
	}
	if v := o.newestConclusive(); v != nil {
		st.LastSuccessfulVerificationTime = timePtr(v.run.finishedAt)
	}
	if !o.nextVerification.IsZero() {
		st.NextVerificationTime = timePtr(o.nextVerification)
	}
	return st
}

// timePtr returns t at the one-second precision the API stores, so that a status rebuilt from
// the same observation compares equal to the one read back.
func timePtr(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	mt := metav1.NewTime(t).Rfc3339Copy()
	return &mt
}
