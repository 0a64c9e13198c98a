package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
	"github.com/fragile-operator/fragile-operator/pkg/contract"
)

// Reclaiming a bundle stored on a PVC or in S3 when its ModelWatermark is deleted
// (spec.bundle.reclaimPolicy Delete, the default). The manager never mounts a claim or holds
// storage credentials, so a Job does the deleting, as training and verification do their work.
// The finalizer FinalizerBundleCleanup is on every resource whose bundle is to be reclaimed from
// before its first training Job starts; deleting such a resource then goes through finalize:
//
//  1. Decide what to delete: the place and digest recorded in status.bundle (or, if the status
//     was not written yet, on the bundle Secret). Nothing recorded, or reclaimPolicy Retain:
//     nothing is deleted, an event says so, the finalizer goes.
//  2. Note when the cleanup began (an annotation, on the injected clock). Every later step is
//     bounded by cleanupTimeout from then: storage that never answers, a Job that never runs,
//     cannot hold the deletion for longer; the event then says what was left behind.
//  3. Delete the resource's Jobs and wait until its training Pods have stopped, so that no
//     training run writes a bundle after the cleanup looked.
//  4. Run the cleanup Job (`fragile cleanup`): it deletes the bytes only if they still have
//     the recorded digest, so a bundle another writer put there is never lost.
//  5. Read its report, say in an event what became of the bundle, remove the finalizer.
//
// The cleanup Job has no owner reference: in a foreground deletion the garbage collector
// deletes every dependent of the resource, and would delete the Job before it ran. It is found
// by name, checked against the resource's UID, and removed by ttlSecondsAfterFinished.

const (
	componentCleanup = "cleanup"

	// annotationCleanupStarted on a ModelWatermark being deleted is when its cleanup began
	// (RFC 3339, the controller's clock).
	annotationCleanupStarted = "fragile.dev/cleanup-started"
	// annotationOwnerUID on a cleanup Job is the UID of the ModelWatermark it cleans up after:
	// a resource recreated under the same name must not take an old Job's report for its own.
	annotationOwnerUID = "fragile.dev/modelwatermark-uid"

	// cleanupTimeout bounds the whole cleanup, from step 2 to the finalizer's removal.
	cleanupTimeout = 10 * time.Minute
	// cleanupJobDeadline bounds the cleanup Job's Pods together; cleanupJobRetries is its
	// backoffLimit: unlike the other Jobs, a failed cleanup attempt is retried by the Job
	// controller, since it has no verdict to lose and each try is one or two S3 requests.
	cleanupJobDeadline = 300
	cleanupJobRetries  = 2
	// cleanupJobTTL keeps a finished cleanup Job (and its log) this long after the resource went.
	cleanupJobTTL = 600
	// cleanupPoll is how often the stop of the training Pods is checked, besides Pod events.
	cleanupPoll = 5 * time.Second
)

// cleanupJobName is 40 + len("-cleanup") = 48 characters at most.
func cleanupJobName(mw *fragilev1alpha1.ModelWatermark) string { return mw.Name + "-cleanup" }

// reclaims reports whether deleting mw must delete its bundle first.
func reclaims(mw *fragilev1alpha1.ModelWatermark) bool {
	b := mw.Spec.Bundle
	return b != nil && b.URI != "" && b.ReclaimPolicy != fragilev1alpha1.BundleReclaimRetain
}

// ensureFinalizer adds the bundle-cleanup finalizer when mw's bundle is to be reclaimed, and
// removes it when the policy no longer asks for it.
func (r *ModelWatermarkReconciler) ensureFinalizer(ctx context.Context, mw *fragilev1alpha1.ModelWatermark) error {
	want := reclaims(mw)
	if want == controllerutil.ContainsFinalizer(mw, fragilev1alpha1.FinalizerBundleCleanup) {
		return nil
	}
	orig := mw.DeepCopy()
	if want {
		controllerutil.AddFinalizer(mw, fragilev1alpha1.FinalizerBundleCleanup)
	} else {
		controllerutil.RemoveFinalizer(mw, fragilev1alpha1.FinalizerBundleCleanup)
	}
	// The optimistic lock keeps a merge patch of the finalizer list from dropping another's.
	return r.Patch(ctx, mw, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
}

// bundleTarget is the bundle a cleanup deletes: where it is, and the digest it must have.
type bundleTarget struct {
	loc    bundleLocation
	digest string
}

// cleanupTarget is the bundle recorded for mw: status.bundle, or the digest the training Job
// recorded on the bundle Secret for the current watermark when status has not caught up.
func (r *ModelWatermarkReconciler) cleanupTarget(ctx context.Context, mw *fragilev1alpha1.ModelWatermark) (bundleTarget, error) {
	var s3 *fragilev1alpha1.S3Access
	if mw.Spec.Bundle != nil {
		s3 = mw.Spec.Bundle.S3
	}
	if st := mw.Status.Bundle; st != nil && st.URI != "" && st.Digest != "" {
		return bundleTarget{loc: bundleAt(st.URI, s3), digest: st.Digest}, nil
	}
	t := bundleTarget{loc: locateBundle(mw)}
	m, err := r.secretMeta(ctx, r.Client, mw.Namespace, bundleSecretName(mw))
	if err != nil || m == nil {
		return t, err
	}
	if m.Annotations[contract.AnnotationWatermarkHash] == watermarkHash(mw) {
		t.digest = m.Annotations[contract.AnnotationBundleDigest]
	}
	return t, nil
}

// finalize runs the numbered steps above for a ModelWatermark being deleted.
func (r *ModelWatermarkReconciler) finalize(ctx context.Context, mw *fragilev1alpha1.ModelWatermark) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(mw, fragilev1alpha1.FinalizerBundleCleanup) {
		return ctrl.Result{}, nil
	}
	log := logf.FromContext(ctx)

	// 1. What to delete.
	t, err := r.cleanupTarget(ctx, mw)
	if err != nil {
		return ctrl.Result{}, err
	}
	switch {
	case !reclaims(mw):
		return r.release(ctx, mw, corev1.EventTypeNormal, fragilev1alpha1.ReasonBundleKept,
			fmt.Sprintf("reclaimPolicy is Retain: the bundle at %s was left in place", t.loc.uri))
	case t.digest == "":
		return r.release(ctx, mw, corev1.EventTypeNormal, fragilev1alpha1.ReasonBundleKept,
			fmt.Sprintf("no sealed bundle was recorded for this resource, so nothing at %s was deleted", t.loc.uri))
	}
	what := fmt.Sprintf("%s (%s)", t.loc.uri, t.digest)

	// 2. When the cleanup began, and its deadline.
	started, err := r.cleanupStarted(ctx, mw)
	if err != nil {
		return ctrl.Result{}, err
	}
	now := r.Clock.Now()
	deadline := started.Add(cleanupTimeout)

	job, err := r.cleanupJob(ctx, mw)
	if err != nil {
		return ctrl.Result{}, err
	}
	if job == nil {
		// 3. Stop training before looking at the bundle.
		waiting, err := r.stopJobs(ctx, mw)
		if err != nil {
			return ctrl.Result{}, err
		}
		switch {
		case !now.Before(deadline) && waiting != "":
			return r.release(ctx, mw, corev1.EventTypeWarning, fragilev1alpha1.ReasonBundleCleanupFailed,
				fmt.Sprintf("training Pod %s did not stop within %s, so the bundle was not deleted: %s is left behind; "+
					"delete it yourself", waiting, cleanupTimeout, what))
		case !now.Before(deadline):
			return r.release(ctx, mw, corev1.EventTypeWarning, fragilev1alpha1.ReasonBundleCleanupFailed,
				fmt.Sprintf("the cleanup Job could not be started within %s: %s is left behind; delete it yourself",
					cleanupTimeout, what))
		case waiting != "":
			return ctrl.Result{RequeueAfter: cleanupPoll}, nil
		}
		// 4. Start the cleanup Job.
		job = newCleanupJob(mw, r.JobImage, t)
		switch err := r.Create(ctx, job); {
		case err == nil:
			log.V(1).Info("started bundle cleanup", "job", job.Name)
			r.event(mw, job, corev1.EventTypeNormal, fragilev1alpha1.ReasonBundleCleanupStarted,
				fmt.Sprintf("cleanup Job %s deletes bundle %s", job.Name, what))
		case apierrors.IsAlreadyExists(err):
		default:
			return ctrl.Result{}, fmt.Errorf("creating cleanup Job %s: %w", job.Name, err)
		}
	}

	// 5. Its outcome.
	run := jobRun{job: job}
	run.finished, run.failed, run.finishedAt, run.failReason = jobFinished(job)
	if !run.finished {
		if !now.Before(deadline) {
			return r.release(ctx, mw, corev1.EventTypeWarning, fragilev1alpha1.ReasonBundleCleanupFailed,
				fmt.Sprintf("cleanup Job %s did not finish within %s of the deletion: %s may be left behind; delete it "+
					"yourself", job.Name, cleanupTimeout, what))
		}
		return ctrl.Result{RequeueAfter: deadline.Sub(now)}, nil
	}
	if run.term, _, err = r.readTermination(ctx, job); err != nil {
		return ctrl.Result{}, err
	}
	eventType, reason, note := interpretCleanup(run, t)
	return r.release(ctx, mw, eventType, reason, note)
}

// cleanupStarted reads, or sets to now, when mw's cleanup began.
func (r *ModelWatermarkReconciler) cleanupStarted(ctx context.Context, mw *fragilev1alpha1.ModelWatermark) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, mw.Annotations[annotationCleanupStarted]); err == nil {
		return t, nil
	}
	now := r.Clock.Now().UTC().Truncate(time.Second)
	orig := mw.DeepCopy()
	if mw.Annotations == nil {
		mw.Annotations = map[string]string{}
	}
	mw.Annotations[annotationCleanupStarted] = now.Format(time.RFC3339)
	if err := r.Patch(ctx, mw, client.MergeFrom(orig)); err != nil {
		return time.Time{}, err
	}
	return now, nil
}

// cleanupJob is mw's cleanup Job, nil when there is none. A Job of the same name left by an
// earlier resource of that name (its TTL not yet run out) is deleted, and nil returned.
func (r *ModelWatermarkReconciler) cleanupJob(ctx context.Context, mw *fragilev1alpha1.ModelWatermark) (*batchv1.Job, error) {
	var job batchv1.Job
	if err := r.Get(ctx, types.NamespacedName{Namespace: mw.Namespace, Name: cleanupJobName(mw)}, &job); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	if job.Annotations[annotationOwnerUID] == string(mw.UID) {
		return &job, nil
	}
	if !job.DeletionTimestamp.IsZero() {
		// Still going; the create will meet AlreadyExists until it is gone.
		return nil, fmt.Errorf("cleanup Job %s of an earlier resource of this name is still being deleted", job.Name)
	}
	err := r.Delete(ctx, &job, client.PropagationPolicy(metav1.DeletePropagationBackground))
	if client.IgnoreNotFound(err) != nil {
		return nil, err
	}
	return nil, fmt.Errorf("deleted cleanup Job %s of an earlier resource of this name", job.Name)
}

// stopJobs deletes mw's training and verification Jobs and returns the name of a training Pod
// that has not stopped yet, "" when none is left running.
func (r *ModelWatermarkReconciler) stopJobs(ctx context.Context, mw *fragilev1alpha1.ModelWatermark) (string, error) {
	var jobs batchv1.JobList
	if err := r.List(ctx, &jobs, client.InNamespace(mw.Namespace), client.MatchingFields{jobOwnerKey: mw.Name}); err != nil {
		return "", err
	}
	for i := range jobs.Items {
		job := &jobs.Items[i]
		if !job.DeletionTimestamp.IsZero() {
			continue
		}
		err := r.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground))
		if client.IgnoreNotFound(err) != nil {
			return "", err
		}
	}
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(mw.Namespace), client.MatchingLabels{
		fragilev1alpha1.LabelModelWatermark: mw.Name, labelComponent: componentTraining}); err != nil {
		return "", err
	}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			return p.Name, nil
		}
	}
	return "", nil
}

// newCleanupJob runs `fragile cleanup` with the bundle's place and recorded digest. Like a
// verification Job it has no API token; it mounts the claim read-write or the S3 Secret.
func newCleanupJob(mw *fragilev1alpha1.ModelWatermark, image string, t bundleTarget) *batchv1.Job {
	args, volumes, mounts := t.loc.cleanup()
	args = append(append([]string{"cleanup"}, args...), "--bundle-digest", t.digest, "--report", terminationPath)
	job := newJob(mw, jobTemplate{
		name: cleanupJobName(mw), component: componentCleanup, hash: watermarkHash(mw), image: image,
		args: args, volumes: volumes, mounts: mounts, deadlineSeconds: cleanupJobDeadline,
		annotations: map[string]string{annotationOwnerUID: string(mw.UID)},
	})
	job.Spec.BackoffLimit = ptr.To[int32](cleanupJobRetries)
	job.Spec.TTLSecondsAfterFinished = ptr.To[int32](cleanupJobTTL)
	return job
}

// interpretCleanup turns a finished cleanup Job into the event that records the outcome.
func interpretCleanup(run jobRun, t bundleTarget) (eventType, reason, note string) {
	what := fmt.Sprintf("%s (%s)", t.loc.uri, t.digest)
	leftBehind := func(why string) (string, string, string) {
		return corev1.EventTypeWarning, fragilev1alpha1.ReasonBundleCleanupFailed,
			fmt.Sprintf("cleanup Job %s could not delete bundle %s after %d attempt(s): %s; it is left behind, delete it yourself",
				run.job.Name, what, max(run.job.Status.Failed, 1), why)
	}
	if !run.term.found {
		why := "no report from its Pod"
		if run.failReason != "" {
			why += " (Job " + run.failReason + ")"
		}
		return leftBehind(why)
	}
	var rep contract.CleanupReport
	if err := json.Unmarshal([]byte(run.term.message), &rep); err != nil {
		return leftBehind("its termination message is not a JSON report")
	}
	switch rep.Result {
	case contract.CleanupDeleted:
		return corev1.EventTypeNormal, fragilev1alpha1.ReasonBundleDeleted,
			fmt.Sprintf("cleanup Job %s deleted bundle %s, %d bytes", run.job.Name, what, rep.Bytes)
	case contract.CleanupAbsent:
		return corev1.EventTypeNormal, fragilev1alpha1.ReasonBundleAlreadyGone,
			fmt.Sprintf("nothing to delete at %s: %s", t.loc.uri, clip(rep.Message))
	case contract.CleanupKept:
		return corev1.EventTypeWarning, fragilev1alpha1.ReasonBundleKept, clip(rep.Message)
	case contract.CleanupError:
		return leftBehind(clip(rep.Message))
	}
	return leftBehind(fmt.Sprintf("its report has an unknown result %q", rep.Result))
}

// release records the cleanup's outcome and removes the finalizer, which lets the resource go.
// The event is emitted once the finalizer is gone, so a failed removal, retried, does not
// repeat it.
func (r *ModelWatermarkReconciler) release(ctx context.Context, mw *fragilev1alpha1.ModelWatermark, eventType, reason, note string) (ctrl.Result, error) {
	orig := mw.DeepCopy()
	controllerutil.RemoveFinalizer(mw, fragilev1alpha1.FinalizerBundleCleanup)
	if err := r.Patch(ctx, mw, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	r.event(mw, nil, eventType, reason, note)
	return ctrl.Result{}, nil
}

// event records a cleanup event on mw.
func (r *ModelWatermarkReconciler) event(mw *fragilev1alpha1.ModelWatermark, related *batchv1.Job, eventType, reason, note string) {
	if r.Recorder == nil {
		return
	}
	if related == nil {
		r.Recorder.Eventf(mw, nil, eventType, reason, "Cleanup", "%s", clip(note))
		return
	}
	r.Recorder.Eventf(mw, related, eventType, reason, "Cleanup", "%s", clip(note))
}

// cleanupJobToModelWatermark maps a cleanup Job to the ModelWatermark named in its labels.
func cleanupJobToModelWatermark(ctx context.Context, obj client.Object) []reconcile.Request {
	if obj.GetLabels()[labelComponent] != componentCleanup {
		return nil
	}
	return podToModelWatermark(ctx, obj)
}
