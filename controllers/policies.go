package controllers

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
	"github.com/fragile-operator/fragile-operator/pkg/contract"
)

// Each condition is decided by a chain of named policies, after cert-manager's certificate
// policies: a policy either decides the condition or returns nil to let the next one look.
// The order of a chain is its precedence; its last policy always decides.

// decision is what a policy decides: a condition's status, reason and message.
type decision struct {
	status  metav1.ConditionStatus
	reason  string
	message string
}

// policy is one check of a chain. It returns nil when it has nothing to say.
type policy func(o *observation) *decision

// chain is a list of policies in order of precedence.
type chain []policy

// evaluate returns the condition decided by the first policy of c that decides.
func (c chain) evaluate(conditionType string, o *observation) metav1.Condition {
	for _, p := range c {
		if d := p(o); d != nil {
			return metav1.Condition{Type: conditionType, Status: d.status, Reason: d.reason, Message: d.message}
		}
	}
	panic("condition chain for " + conditionType + " decided nothing")
}

func decide(status metav1.ConditionStatus, reason, message string) *decision {
	return &decision{status: status, reason: reason, message: message}
}

const (
	condTrue    = metav1.ConditionTrue
	condFalse   = metav1.ConditionFalse
	condUnknown = metav1.ConditionUnknown
)

// watermarkedChain decides the Watermarked condition.
var watermarkedChain = chain{
	keySecretMissing,
	specRejected,
	trainingNotStarted,
	trainingRunning,
	trainingFailed,
	trainedUnpinnedBytes,
	bundleNotHeld,
	watermarked,
}

// keySecretMissing: the key Secret is gone. A generated key deleted after sealing is not
// replaced, because a new key would silently re-watermark a model that may have changed.
func keySecretMissing(o *observation) *decision {
	if !o.keyMissing {
		return nil
	}
	if o.keyGenerated {
		return decide(condFalse, fragilev1alpha1.ReasonKeySecretNotFound, fmt.Sprintf(
			"the generated key Secret %s was deleted after a bundle was sealed with it, so the watermark can no "+
				"longer be verified; the operator does not silently re-watermark a model that may have been changed "+
				"meanwhile. Delete Secret %s to watermark the model afresh with a new key",
			o.keyName, bundleSecretName(o.mw)))
	}
	return decide(condFalse, fragilev1alpha1.ReasonKeySecretNotFound, fmt.Sprintf(
		"Secret %s named by spec.keySecretRef does not exist in namespace %s", o.keyName, o.mw.Namespace))
}

// specRejected: the model location, or a Job built from the spec, was refused.
func specRejected(o *observation) *decision {
	if o.rejected == "" {
		return nil
	}
	return decide(condFalse, fragilev1alpha1.ReasonJobRejected, clip(o.rejected))
}

// trainingNotStarted: no training Job exists for the current watermark.
func trainingNotStarted(o *observation) *decision {
	if o.training != nil {
		return nil
	}
	if o.mw.Spec.Suspend {
		return decide(condUnknown, fragilev1alpha1.ReasonSuspended, "spec.suspend is true, so training has not started")
	}
	return decide(condUnknown, fragilev1alpha1.ReasonTrainingPending, "no training Job exists yet for the current spec")
}

// trainingRunning: the training Job has not finished; its progress line is shown.
func trainingRunning(o *observation) *decision {
	if o.training.finished {
		return nil
	}
	msg := fmt.Sprintf("training Job %s is running", o.training.job.Name)
	if n := attemptOf(o.training.job); n > 1 {
		msg = fmt.Sprintf("training Job %s (attempt %d of %d) is running", o.training.job.Name, n, maxAttempts(o.mw))
	}
	if p := o.progress(); p != "" {
		msg += ": " + p
	}
	return decide(condUnknown, fragilev1alpha1.ReasonTrainingInProgress, msg)
}

// trainingFailed: the training Job finished without a usable report; another attempt waits for
// its backoff (TrainingBackoff) or none is left (TrainingFailed).
func trainingFailed(o *observation) *decision {
	if o.result.ok {
		return nil
	}
	n, limit := attemptOf(o.training.job), maxAttempts(o.mw)
	if o.retrying() {
		when := "at " + o.nextAttempt.UTC().Format(time.RFC3339)
		if o.mw.Spec.Suspend {
			when = "once spec.suspend is false"
		}
		return decide(condUnknown, fragilev1alpha1.ReasonTrainingBackoff, clip(fmt.Sprintf(
			"training attempt %d of %d (Job %s) failed: %s; attempt %d starts %s",
			n, limit, o.training.job.Name, o.result.problem, n+1, when)))
	}
	return decide(condFalse, fragilev1alpha1.ReasonTrainingFailed, clip(fmt.Sprintf(
		"training Job %s did not produce a watermark (attempt %d of %d, no retries left): %s. Delete the "+
			"training Jobs to start again, or change the spec", o.training.job.Name, n, limit, o.result.problem)))
}

// trainedUnpinnedBytes: spec.model.sha256 pins bytes other than the ones training read.
func trainedUnpinnedBytes(o *observation) *decision {
	pin := o.mw.Spec.Model.SHA256
	if pin == "" || o.result.report.ModelDigest == "sha256:"+pin {
		return nil
	}
	return decide(condFalse, fragilev1alpha1.ReasonDigestMismatch, fmt.Sprintf(
		"training Job %s read a model with digest %s, but spec.model.sha256 pins sha256:%s; a watermark of "+
			"unapproved bytes is not used", o.training.job.Name, orNone(o.result.report.ModelDigest), pin))
}

// bundleNotHeld: training succeeded but the bundle Secret no longer holds its bundle.
func bundleNotHeld(o *observation) *decision {
	if o.bundle != nil && o.bundle.Annotations[contract.AnnotationWatermarkHash] == o.hash && o.bundleSealed() {
		return nil
	}
	return decide(condFalse, fragilev1alpha1.ReasonBundleMissing, fmt.Sprintf(
		"training Job %s succeeded, but Secret %s does not hold the bundle it sealed (deleted or overwritten); "+
			"delete the Job to train again", o.training.job.Name, bundleSecretName(o.mw)))
}

// watermarked: nothing stands in the way.
func watermarked(o *observation) *decision {
	r := o.result.report
	msg := fmt.Sprintf("%d triggers sealed into %s by training Job %s after %d steps",
		r.Triggers, bundlePlace(o.mw), o.training.job.Name, r.Steps)
	if r.KeyID != "" {
		msg += fmt.Sprintf(" (key %s)", r.KeyID)
	}
	return decide(condTrue, fragilev1alpha1.ReasonWatermarked, msg)
}

// intactChain decides the Intact condition. Its first policy makes a tampering verdict sticky:
// a later verification that merely fails to run does not clear it.
var intactChain = chain{
	tamperDetected,
	cannotVerifyWithoutKey,
	awaitingWatermark,
	endpointUnresolved,
	verificationNotFinished,
	verificationFailed,
	intact,
}

// tamperDetected: the newest conclusive verification found changed labels.
func tamperDetected(o *observation) *decision {
	v := o.newestConclusive()
	if v == nil || v.result != fragilev1alpha1.VerificationTampered {
		return nil
	}
	msg := fmt.Sprintf("verification Job %s found %d of %d triggers with a changed label: the model's "+
		"weights are not the ones that were watermarked", v.run.job.Name, v.mismatched, v.total)
	if newest := o.verdicts[0]; newest.run.job != v.run.job {
		msg += fmt.Sprintf("; the newer verification Job %s reached no verdict (%s), which does not clear this",
			newest.run.job.Name, newest.message)
	}
	return decide(condFalse, fragilev1alpha1.ReasonTamperDetected, clip(msg))
}

// cannotVerifyWithoutKey: Watermarked is False because the key Secret is gone.
func cannotVerifyWithoutKey(o *observation) *decision {
	if !o.keyMissing || o.watermarked.Reason != fragilev1alpha1.ReasonKeySecretNotFound {
		return nil
	}
	return decide(condUnknown, fragilev1alpha1.ReasonKeySecretNotFound,
		fmt.Sprintf("cannot verify without the key Secret %s", o.keyName))
}

// awaitingWatermark: there is no watermark to verify yet.
func awaitingWatermark(o *observation) *decision {
	if o.watermarked.Status == condTrue {
		return nil
	}
	return decide(condUnknown, fragilev1alpha1.ReasonAwaitingWatermark, fmt.Sprintf(
		"nothing to verify until the model is watermarked (Watermarked is %s: %s)",
		o.watermarked.Status, o.watermarked.Reason))
}

// endpointUnresolved: spec.endpoint names an InferenceService that does not resolve to a URL,
// so no verification can start. It outranks older verdicts, except a tampering one.
func endpointUnresolved(o *observation) *decision {
	if o.endpointProblem == "" {
		return nil
	}
	return decide(condUnknown, fragilev1alpha1.ReasonEndpointUnresolved, clip(o.endpointProblem+
		"; no verification starts until spec.endpoint resolves"))
}

// verificationNotFinished: no verification of the current watermark has finished.
func verificationNotFinished(o *observation) *decision {
	if len(o.verdicts) > 0 {
		return nil
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
	return decide(condUnknown, fragilev1alpha1.ReasonVerificationPending, msg)
}

// verificationFailed: the newest verification reached no verdict, which says nothing about
// tampering.
func verificationFailed(o *observation) *decision {
	v := o.verdicts[0]
	if v.conclusive() {
		return nil
	}
	reason, hint := failureReason(o.mw, v.cause)
	return decide(condUnknown, reason, clip(fmt.Sprintf(
		"verification Job %s reached no verdict: %s. This says nothing about tampering; %sthe next "+
			"verification will try again", v.run.job.Name, v.message, hint)))
}

// intact: the newest verification found every trigger with its key label.
func intact(o *observation) *decision {
	v := o.verdicts[0]
	msg := fmt.Sprintf("all %d triggers kept their key labels in verification Job %s", v.total, v.run.job.Name)
	if v.endpoint != "" {
		return decide(condTrue, fragilev1alpha1.ReasonIntact, msg+", answered live by "+v.endpoint)
	}
	if !v.digestMatches {
		msg += fmt.Sprintf("; the model bytes (%s) differ from the watermarked file, as after a "+
			"re-serialisation that kept every weight", orNone(v.modelDigest))
	}
	return decide(condTrue, fragilev1alpha1.ReasonIntact, msg)
}

// readyChain decides the summary Ready condition from Watermarked and Intact.
var readyChain = chain{
	tamperOutranksAll,
	jobsSuspended,
	borrowUnlessTrue(func(o *observation) metav1.Condition { return o.watermarked }),
	borrowUnlessTrue(func(o *observation) metav1.Condition { return o.intact }),
	verifiedUnpinnedBytes,
	ready,
}

// tamperOutranksAll: tampering outranks everything else that could be wrong.
func tamperOutranksAll(o *observation) *decision {
	if o.intact.Reason != fragilev1alpha1.ReasonTamperDetected {
		return nil
	}
	return decide(o.intact.Status, o.intact.Reason, o.intact.Message)
}

// jobsSuspended: no Jobs start while spec.suspend is true.
func jobsSuspended(o *observation) *decision {
	if !o.mw.Spec.Suspend {
		return nil
	}
	return decide(condFalse, fragilev1alpha1.ReasonSuspended, "spec.suspend is true: no training or verification "+
		"Jobs start, and Watermarked and Intact keep the last results")
}

// borrowUnlessTrue makes Ready repeat a condition that is not True.
func borrowUnlessTrue(condition func(*observation) metav1.Condition) policy {
	return func(o *observation) *decision {
		c := condition(o)
		if c.Status == condTrue {
			return nil
		}
		return decide(c.Status, c.Reason, c.Message)
	}
}

// verifiedUnpinnedBytes: the newest verification read bytes other than the pinned ones. A live
// endpoint exposes no bytes: the pin is then checked by training alone.
func verifiedUnpinnedBytes(o *observation) *decision {
	pin, v := o.mw.Spec.Model.SHA256, o.verdicts[0]
	if pin == "" || v.endpoint != "" || v.modelDigest == "sha256:"+pin {
		return nil
	}
	return decide(condFalse, fragilev1alpha1.ReasonDigestMismatch, fmt.Sprintf(
		"verification Job %s read model bytes with digest %s, but spec.model.sha256 pins sha256:%s",
		v.run.job.Name, orNone(v.modelDigest), pin))
}

// ready: watermarked, verified intact, and the bytes are the pinned ones.
func ready(o *observation) *decision {
	return decide(condTrue, fragilev1alpha1.ReasonReady, fmt.Sprintf(
		"the model is watermarked and verification Job %s found it intact", o.verdicts[0].run.job.Name))
}
