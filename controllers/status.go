package controllers

import (
	"context"
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

	// endpoint is the live model verification Jobs check (spec.endpoint resolved), nil when they
	// read the artifact or the reference does not resolve; endpointProblem then says why.
	endpoint        *endpointTarget
	endpointProblem string

	// nextVerification is when the next verification is due; zero when none is scheduled.
	nextVerification time.Time

	// nextAttempt is when the next training attempt starts after a failed one; zero when no
	// retry is scheduled.
	nextAttempt time.Time

	// watermarked is the evaluated Watermarked condition; verification waits for it. intact is
	// the evaluated Intact condition, which the Ready chain summarises with watermarked.
	watermarked metav1.Condition
	intact      metav1.Condition

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

	intact := intactChain.evaluate(fragilev1alpha1.ConditionIntact, o)
	o.intact = intact
	ready := readyChain.evaluate(fragilev1alpha1.ConditionReady, o)
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
	if o.endpoint != nil {
		st.EndpointURL = o.endpoint.url
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
