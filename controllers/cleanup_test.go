package controllers

import (
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
	"github.com/fragile-operator/fragile-operator/pkg/contract"
)

// withBundle keeps the bundle at uri (pvc:// or s3://, the latter with Secret s3-credentials)
// under the given reclaim policy ("" for the default).
func withBundle(uri string, policy fragilev1alpha1.BundleReclaimPolicy) mwOption {
	return func(mw *fragilev1alpha1.ModelWatermark) {
		mw.Spec.Bundle = &fragilev1alpha1.BundleStorage{URI: uri, ReclaimPolicy: policy}
		if strings.HasPrefix(uri, "s3://") {
			mw.Spec.Bundle.S3 = &fragilev1alpha1.S3Access{SecretName: "s3-credentials"}
		}
	}
}

func hasFinalizer(mw *fragilev1alpha1.ModelWatermark) bool {
	return controllerutil.ContainsFinalizer(mw, fragilev1alpha1.FinalizerBundleCleanup)
}

// notes drains the recorded events as full "Type Reason note" lines.
func (h *harness) notes() []string {
	var out []string
	for {
		select {
		case e := <-h.rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// deleteMW deletes the resource as kubectl would; with a finalizer it only gets a
// deletionTimestamp.
func (h *harness) deleteMW(name string) {
	h.t.Helper()
	if err := h.c.Delete(h.ctx, h.mw(name)); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) gone(name string) bool {
	h.t.Helper()
	var mw fragilev1alpha1.ModelWatermark
	err := h.c.Get(h.ctx, types.NamespacedName{Namespace: testNamespace, Name: name}, &mw)
	if err != nil && !apierrors.IsNotFound(err) {
		h.t.Fatal(err)
	}
	return apierrors.IsNotFound(err)
}

func (h *harness) cleanupJob(name string) *batchv1.Job {
	h.t.Helper()
	var job batchv1.Job
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: testNamespace, Name: name + "-cleanup"}, &job); err != nil {
		h.t.Fatalf("no cleanup Job: %v", err)
	}
	return &job
}

func reqFor(name string) ctrl.Request {
	return ctrl.Request{NamespacedName: types.NamespacedName{Namespace: testNamespace, Name: name}}
}

func cleanupReport(r contract.CleanupReport) report {
	return jsonReport(r, r.Result.ExitCode())
}

// TestFinalizerFollowsReclaimPolicy: only a bundle off-Secret under reclaimPolicy Delete (the
// default) gets the finalizer, and it is there before the first training Job; Retain takes it
// away again without retraining.
func TestFinalizerFollowsReclaimPolicy(t *testing.T) {
	for name, tc := range map[string]struct {
		opts []mwOption
		want bool
	}{
		"secret":       {want: false},
		"pvc default":  {opts: []mwOption{withBundle("pvc://bundles/mnist.fwm", "")}, want: true},
		"s3 Delete":    {opts: []mwOption{withBundle("s3://bundles/mnist", fragilev1alpha1.BundleReclaimDelete)}, want: true},
		"s3 Retain":    {opts: []mwOption{withBundle("s3://bundles/mnist", fragilev1alpha1.BundleReclaimRetain)}, want: false},
		"pvc Retained": {opts: []mwOption{withBundle("pvc://bundles/mnist.fwm", fragilev1alpha1.BundleReclaimRetain)}, want: false},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, newMW("mnist", tc.opts...))
			h.reconcile("mnist")
			if got := hasFinalizer(h.mw("mnist")); got != tc.want {
				t.Fatalf("finalizer %v, want %v", got, tc.want)
			}
			h.onlyJob("mnist", componentTraining)
		})
	}

	h := newHarness(t, newMW("mnist", withBundle("s3://bundles/mnist", "")))
	h.train("mnist", trainedOK(100))
	before := h.onlyJob("mnist", componentTraining).Name
	mw := h.mw("mnist")
	mw.Spec.Bundle.ReclaimPolicy = fragilev1alpha1.BundleReclaimRetain
	if err := h.c.Update(h.ctx, mw); err != nil {
		t.Fatal(err)
	}
	h.reconcile("mnist")
	if hasFinalizer(h.mw("mnist")) {
		t.Error("Retain kept the finalizer")
	}
	if after := h.onlyJob("mnist", componentTraining).Name; after != before {
		t.Errorf("changing reclaimPolicy retrained: %s -> %s", before, after)
	}
}

// TestCleanupDeletesRecordedBundle: deleting a watermarked resource with its bundle in S3 runs
// one cleanup Job with the recorded place and digest, the S3 Secret and no API token; its
// "deleted" report lets the resource go with a Normal BundleDeleted event.
func TestCleanupDeletesRecordedBundle(t *testing.T) {
	h := newHarness(t, newMW("mnist", withBundle("s3://bundles/ns/mnist", "")))
	h.train("mnist", trainedOK(100))
	h.reconcile("mnist") // the first verification Job
	if st := h.mw("mnist").Status.Bundle; st == nil || st.URI != "s3://bundles/ns/mnist" || st.Digest != "sha256:b0b0" {
		t.Fatalf("status.bundle %+v", st)
	}
	h.notes()

	h.deleteMW("mnist")
	h.reconcile("mnist")
	if h.gone("mnist") {
		t.Fatal("the resource went before its bundle was cleaned up")
	}
	if jobs := append(h.jobs("mnist", componentTraining), h.jobs("mnist", componentVerification)...); len(jobs) != 0 {
		t.Errorf("training and verification Jobs still there during cleanup: %v", jobNames(jobs))
	}
	job := h.cleanupJob("mnist")
	args := jobArgs(job)
	if job.Spec.Template.Spec.Containers[0].Command[1] != "cleanup" || args["--bundle"] != "s3://bundles/ns/mnist" ||
		args["--bundle-digest"] != "sha256:b0b0" || args["--bundle-s3-credentials"] != s3BundleDir {
		t.Errorf("cleanup command %q", job.Spec.Template.Spec.Containers[0].Command)
	}
	if len(job.OwnerReferences) != 0 {
		t.Errorf("the cleanup Job is owned (%v): a foreground deletion would delete it before it ran", job.OwnerReferences)
	}
	pod := job.Spec.Template.Spec
	if ptr.Deref(pod.AutomountServiceAccountToken, true) || pod.ServiceAccountName != "" {
		t.Error("the cleanup Job has an API token")
	}
	var secretVolume bool
	for _, v := range pod.Volumes {
		secretVolume = secretVolume || (v.Secret != nil && v.Secret.SecretName == "s3-credentials")
	}
	if !secretVolume {
		t.Errorf("the S3 Secret is not mounted: %+v", pod.Volumes)
	}
	if ptr.Deref(job.Spec.BackoffLimit, 0) != cleanupJobRetries || job.Spec.TTLSecondsAfterFinished == nil ||
		job.Annotations[annotationOwnerUID] != string(h.mw("mnist").UID) {
		t.Errorf("cleanup Job spec: backoffLimit %v, ttl %v, annotations %v", job.Spec.BackoffLimit,
			job.Spec.TTLSecondsAfterFinished, job.Annotations)
	}
	if ev := h.notes(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Normal "+fragilev1alpha1.ReasonBundleCleanupStarted) {
		t.Errorf("events %q, want one BundleCleanupStarted", ev)
	}

	h.reconcile("mnist") // nothing new while the Job runs
	h.finish(job, cleanupReport(contract.CleanupReport{Result: contract.CleanupDeleted, Digest: "sha256:b0b0", Bytes: 1300000}))
	h.reconcile("mnist")
	if !h.gone("mnist") {
		t.Fatal("the resource is still there after its bundle was deleted")
	}
	ev := h.notes()
	if len(ev) != 1 || !strings.HasPrefix(ev[0], "Normal "+fragilev1alpha1.ReasonBundleDeleted) ||
		!strings.Contains(ev[0], "s3://bundles/ns/mnist (sha256:b0b0)") {
		t.Errorf("events %q, want BundleDeleted naming the bundle", ev)
	}
}

// TestCleanupOutcomes: each report of the cleanup Job ends the deletion with the event that says
// what became of the bundle; a PVC bundle's Job mounts the claim read-write.
func TestCleanupOutcomes(t *testing.T) {
	for name, tc := range map[string]struct {
		rep             report
		failedPods      int32
		event, contains string
	}{
		"deleted": {rep: cleanupReport(contract.CleanupReport{Result: contract.CleanupDeleted, Bytes: 10}),
			event: "Normal " + fragilev1alpha1.ReasonBundleDeleted, contains: "pvc://bundles/ns/mnist.fwm"},
		"absent": {rep: cleanupReport(contract.CleanupReport{Result: contract.CleanupAbsent, Message: "no file /x"}),
			event: "Normal " + fragilev1alpha1.ReasonBundleAlreadyGone, contains: "no file /x"},
		"other bytes there": {rep: cleanupReport(contract.CleanupReport{Result: contract.CleanupKept, Digest: otherDigest,
			Message: "holds other bytes, left alone"}),
			event: "Warning " + fragilev1alpha1.ReasonBundleKept, contains: "left alone"},
		"storage refused": {rep: cleanupReport(contract.CleanupReport{Result: contract.CleanupError,
			Cause: contract.CauseStorageAccessDenied, Message: "refused the credentials"}), failedPods: 3,
			event: "Warning " + fragilev1alpha1.ReasonBundleCleanupFailed, contains: "after 3 attempt(s): refused the credentials; it is left behind"},
		"no report": {rep: report{exitCode: 137}, failedPods: 3,
			event: "Warning " + fragilev1alpha1.ReasonBundleCleanupFailed, contains: "not a JSON report"},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, newMW("mnist", withBundle("pvc://bundles/ns/mnist.fwm", "")))
			h.train("mnist", trainedOK(100))
			h.deleteMW("mnist")
			h.reconcile("mnist")
			job := h.cleanupJob("mnist")
			var claim bool
			for _, v := range job.Spec.Template.Spec.Volumes {
				claim = claim || (v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "bundles" && !v.PersistentVolumeClaim.ReadOnly)
			}
			if !claim || jobArgs(job)["--bundle"] != bundleStoreDir+"/ns/mnist.fwm" {
				t.Errorf("cleanup Job does not mount claim bundles read-write for %q", jobArgs(job)["--bundle"])
			}
			h.notes()
			h.finish(job, tc.rep)
			if tc.failedPods > 0 { // one Pod per attempt, as the Job controller counts them
				job.Status.Failed = tc.failedPods
				if err := h.c.Status().Update(h.ctx, job); err != nil {
					t.Fatal(err)
				}
			}
			h.reconcile("mnist")
			if !h.gone("mnist") {
				t.Fatal("the resource is still there")
			}
			ev := h.notes()
			if len(ev) != 1 || !strings.HasPrefix(ev[0], tc.event) || !strings.Contains(ev[0], tc.contains) {
				t.Errorf("events %q, want %s containing %q", ev, tc.event, tc.contains)
			}
		})
	}
}

// TestCleanupIsBounded: a cleanup Job that never finishes (no node, storage hanging) holds the
// deletion for cleanupTimeout, not longer; the event says what may be left behind.
func TestCleanupIsBounded(t *testing.T) {
	h := newHarness(t, newMW("mnist", withBundle("s3://bundles/mnist", "")))
	h.train("mnist", trainedOK(100))
	h.deleteMW("mnist")
	if res := h.reconcile("mnist"); res.RequeueAfter != cleanupTimeout {
		t.Errorf("requeue after %s, want the deadline %s", res.RequeueAfter, cleanupTimeout)
	}
	h.cleanupJob("mnist")
	h.notes()
	h.clock.SetTime(t0.Add(cleanupTimeout - time.Second))
	h.reconcile("mnist")
	if h.gone("mnist") {
		t.Fatal("released before the deadline")
	}
	h.clock.SetTime(t0.Add(cleanupTimeout))
	h.reconcile("mnist")
	if !h.gone("mnist") {
		t.Fatal("still held after the deadline")
	}
	if ev := h.notes(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Warning "+fragilev1alpha1.ReasonBundleCleanupFailed) ||
		!strings.Contains(ev[0], "s3://bundles/mnist (sha256:b0b0) may be left behind") {
		t.Errorf("events %q", ev)
	}
}

// TestCleanupWaitsForTraining: a training Pod still running when the resource is deleted is
// stopped (its Job deleted) and waited for before any cleanup Job looks at the bundle.
func TestCleanupWaitsForTraining(t *testing.T) {
	h := newHarness(t, newMW("mnist", withBundle("s3://bundles/mnist", "")))
	h.train("mnist", trainedOK(100))
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "mnist-train-pod-running", Namespace: testNamespace, Labels: map[string]string{
			labelManagedBy: managedBy, fragilev1alpha1.LabelModelWatermark: "mnist", labelComponent: componentTraining}},
		Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: containerName, Image: DefaultJobImage}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	if err := h.c.Create(h.ctx, pod); err != nil {
		t.Fatal(err)
	}
	h.deleteMW("mnist")
	if res := h.reconcile("mnist"); res.RequeueAfter != cleanupPoll {
		t.Errorf("requeue after %s, want %s", res.RequeueAfter, cleanupPoll)
	}
	var job batchv1.Job
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: testNamespace, Name: "mnist-cleanup"}, &job); !apierrors.IsNotFound(err) {
		t.Fatalf("a cleanup Job started while training ran: %v", err)
	}
	if jobs := h.jobs("mnist", componentTraining); len(jobs) != 0 {
		t.Errorf("training Jobs not deleted: %v", jobNames(jobs))
	}
	pod.Status.Phase = corev1.PodFailed
	if err := h.c.Status().Update(h.ctx, pod); err != nil {
		t.Fatal(err)
	}
	h.reconcile("mnist")
	h.cleanupJob("mnist")
}

// TestCleanupWithoutRecordedBundle: a resource deleted before any bundle was sealed, or under
// Retain, goes at once and no cleanup Job touches its place.
func TestCleanupWithoutRecordedBundle(t *testing.T) {
	h := newHarness(t, newMW("mnist", withBundle("s3://bundles/mnist", "")))
	h.reconcile("mnist") // training runs; nothing sealed
	h.deleteMW("mnist")
	h.reconcile("mnist")
	if !h.gone("mnist") {
		t.Fatal("a resource with nothing sealed is held")
	}
	var job batchv1.Job
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: testNamespace, Name: "mnist-cleanup"}, &job); !apierrors.IsNotFound(err) {
		t.Errorf("cleanup Job for a bundle never recorded: %v", err)
	}
	if ev := h.notes(); len(ev) == 0 || !strings.Contains(ev[len(ev)-1], "Normal "+fragilev1alpha1.ReasonBundleKept+" no sealed bundle was recorded") {
		t.Errorf("events %q", ev)
	}

	// Retain set while the deletion waits: the cleanup that has not started is dropped.
	h = newHarness(t, newMW("mnist", withBundle("s3://bundles/mnist", "")))
	h.train("mnist", trainedOK(100))
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: testNamespace, Labels: map[string]string{
		labelManagedBy: managedBy, fragilev1alpha1.LabelModelWatermark: "mnist", labelComponent: componentTraining}},
		Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: containerName, Image: DefaultJobImage}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	if err := h.c.Create(h.ctx, pod); err != nil {
		t.Fatal(err)
	}
	h.deleteMW("mnist")
	h.reconcile("mnist")
	mw := h.mw("mnist")
	mw.Spec.Bundle.ReclaimPolicy = fragilev1alpha1.BundleReclaimRetain
	if err := h.c.Update(h.ctx, mw); err != nil {
		t.Fatal(err)
	}
	h.reconcile("mnist")
	if !h.gone("mnist") {
		t.Fatal("Retain did not release the resource")
	}
	if ev := h.notes(); len(ev) == 0 || !strings.Contains(ev[len(ev)-1], "reclaimPolicy is Retain") {
		t.Errorf("events %q", ev)
	}
}

// TestCleanupIgnoresEarlierResourcesJob: a cleanup Job left by an earlier resource of the same
// name is deleted, not read as this resource's outcome.
func TestCleanupIgnoresEarlierResourcesJob(t *testing.T) {
	old := newCleanupJob(newMW("mnist", withBundle("s3://bundles/mnist", "")), DefaultJobImage,
		bundleTarget{loc: bundleAt("s3://bundles/mnist", nil), digest: otherDigest})
	old.Annotations[annotationOwnerUID] = "an-earlier-uid"
	h := newHarness(t, newMW("mnist", withBundle("s3://bundles/mnist", "")), old)
	h.train("mnist", trainedOK(100))
	h.deleteMW("mnist")
	if _, err := h.r.Reconcile(h.ctx, reqFor("mnist")); err == nil {
		t.Fatal("the earlier resource's Job was taken for this one's")
	}
	h.reconcile("mnist")
	if job := h.cleanupJob("mnist"); job.Annotations[annotationOwnerUID] != string(h.mw("mnist").UID) ||
		jobArgs(job)["--bundle-digest"] != "sha256:b0b0" {
		t.Errorf("cleanup Job %v for digest %s", job.Annotations, jobArgs(job)["--bundle-digest"])
	}
}
