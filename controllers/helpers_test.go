package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
	"github.com/fragile-operator/fragile-operator/pkg/contract"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
)

// Fixtures shared by the unit tests (fake client) and the envtest suite (real API server).

const testNamespace = "models"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testScheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	s, err := buildScheme()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func buildScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, fragilev1alpha1.AddToScheme(s)
}

// mwOption edits a ModelWatermark fixture.
type mwOption func(*fragilev1alpha1.ModelWatermark)

// newMW is a ModelWatermark for mnist-7 on a PVC, with the defaults the API server would apply
// (the fake client applies none).
func newMW(name string, opts ...mwOption) *fragilev1alpha1.ModelWatermark {
	mw := &fragilev1alpha1.ModelWatermark{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace, Generation: 1},
		Spec: fragilev1alpha1.ModelWatermarkSpec{
			Model: fragilev1alpha1.ModelSource{
				URI:        "pvc://models/mnist-7/model.onnx",
				InputRange: fragilev1alpha1.InputRange{Min: "0", Max: "255"},
			},
			Triggers:     100,
			Training:     fragilev1alpha1.TrainingSpec{TimeoutSeconds: 3600},
			Verification: fragilev1alpha1.VerificationSpec{PeriodSeconds: 600, TimeoutSeconds: 300},
		},
	}
	for _, o := range opts {
		o(mw)
	}
	return mw
}

func withPin(sha string) mwOption {
	return func(mw *fragilev1alpha1.ModelWatermark) { mw.Spec.Model.SHA256 = sha }
}

func withKeyRef(name string) mwOption {
	return func(mw *fragilev1alpha1.ModelWatermark) {
		mw.Spec.KeySecretRef = &fragilev1alpha1.SecretKeyReference{Name: name, Key: "key"}
	}
}

func suspended(mw *fragilev1alpha1.ModelWatermark) { mw.Spec.Suspend = true }

func withMaxAttempts(n int32) mwOption {
	return func(mw *fragilev1alpha1.ModelWatermark) { mw.Spec.Training.MaxAttempts = n }
}

// Reports as the `fragile` binary writes them, with the exit status it exits with.

type report struct {
	message  string
	exitCode int32
}

func jsonReport(v any, code int) report {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return report{message: string(b), exitCode: int32(code)}
}

const (
	modelDigest = "sha256:6f1c1e4c57b0c5c1a3bd9f4b7f2d5c3c0a8d9e1f2b3c4d5e6f708192a3b4c5d6"
	pinnedHex   = "6f1c1e4c57b0c5c1a3bd9f4b7f2d5c3c0a8d9e1f2b3c4d5e6f708192a3b4c5d6"
	otherDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
)

func trainedOK(triggers int) report {
	return jsonReport(contract.WatermarkReport{
		Result: contract.WatermarkSucceeded, Method: string(fragile.DefaultMethod), Triggers: triggers, KeyMatch: 1,
		Steps: 140, ModelDigest: modelDigest, KeyID: "kid-3f2a9c", BundleBytes: 40960, DurationSeconds: 42,
	}, 0)
}

func trainedFailed(msg string) report {
	return jsonReport(contract.WatermarkReport{Result: contract.WatermarkFailed, Message: msg}, 2)
}

func verifiedIntact(total int) report {
	return jsonReport(contract.VerifyReport{Result: contract.ResultIntact, Total: total, DigestMatches: true,
		ModelDigest: modelDigest, DurationSeconds: 3}, 0)
}

func verifiedTampered(total, mismatched int) report {
	return jsonReport(contract.VerifyReport{Result: contract.ResultTampered, Total: total, Mismatched: mismatched,
		ModelDigest: otherDigest, DurationSeconds: 3}, 1)
}

func verifyError(msg string) report {
	return jsonReport(contract.VerifyReport{Result: contract.ResultError, Message: msg}, 2)
}

// finishJobObjects returns the Job with a terminal condition set and the Pod the Job controller
// would have created, terminated with the report: what the Job controller and kubelet would
// leave behind, since neither runs in these tests.
func finishJobObjects(job *batchv1.Job, at time.Time, rep report) *corev1.Pod {
	start := metav1.NewTime(at.Add(-time.Minute))
	done := metav1.NewTime(at)
	job.Status.StartTime = &start
	if rep.exitCode == 0 {
		job.Status.Succeeded = 1
		job.Status.CompletionTime = &done
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: done, LastProbeTime: done},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: done, LastProbeTime: done},
		}
	} else {
		job.Status.Failed = 1
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded",
				Message: "Job has reached the specified backoff limit", LastTransitionTime: done, LastProbeTime: done},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded",
				Message: "Job has reached the specified backoff limit", LastTransitionTime: done, LastProbeTime: done},
		}
	}
	labels := map[string]string{}
	for k, v := range job.Spec.Template.Labels {
		labels[k] = v
	}
	if len(labels) == 0 { // the cache strips Job templates; rebuild the labels that matter
		labels[labelManagedBy] = managedBy
		labels[fragilev1alpha1.LabelModelWatermark] = job.Labels[fragilev1alpha1.LabelModelWatermark]
	}
	labels[jobNameLabel] = job.Name
	phase := corev1.PodSucceeded
	if rep.exitCode != 0 {
		phase = corev1.PodFailed
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: job.Name + "-pod", Namespace: job.Namespace, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: job.Name,
				UID: job.UID, Controller: ptr.To(true)}},
		},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: containerName, Image: DefaultJobImage}},
		},
		Status: corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{
			Name: containerName, Image: DefaultJobImage,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: rep.exitCode, Message: rep.message, Reason: "Completed",
				StartedAt: start, FinishedAt: done,
			}},
		}}},
	}
}

// harness drives the reconciler against the fake client.
type harness struct {
	t     *testing.T
	ctx   context.Context
	c     client.Client
	r     *ModelWatermarkReconciler
	clock *clocktesting.FakePassiveClock
	rec   *events.FakeRecorder
}

func newHarness(t *testing.T, objs ...client.Object) *harness {
	t.Helper()
	scheme := testScheme(t)
	c := fake.NewClientBuilder().
		WithScheme(scheme).
		WithStatusSubresource(&fragilev1alpha1.ModelWatermark{}).
		WithIndex(&batchv1.Job{}, jobOwnerKey, indexJobOwner).
		WithIndex(&corev1.Pod{}, podJobKey, indexPodJob).
		WithObjects(objs...).
		Build()
	clk := clocktesting.NewFakePassiveClock(t0)
	rec := events.NewFakeRecorder(100)
	return &harness{t: t, ctx: context.Background(), c: c, clock: clk, rec: rec, r: &ModelWatermarkReconciler{
		Client: c, APIReader: c, Scheme: scheme, Recorder: rec, Clock: clk, JobImage: DefaultJobImage,
		Rand: bytes.NewReader(bytes.Repeat([]byte{0xab}, 1<<12)),
	}}
}

func (h *harness) reconcile(name string) ctrl.Result {
	h.t.Helper()
	res, err := h.r.Reconcile(h.ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: testNamespace, Name: name}})
	if err != nil {
		h.t.Fatalf("reconcile %s: %v", name, err)
	}
	return res
}

func (h *harness) mw(name string) *fragilev1alpha1.ModelWatermark {
	h.t.Helper()
	var mw fragilev1alpha1.ModelWatermark
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: testNamespace, Name: name}, &mw); err != nil {
		h.t.Fatal(err)
	}
	return &mw
}

// jobs lists the Jobs of a ModelWatermark by component, sorted by name.
func (h *harness) jobs(name, component string) []batchv1.Job {
	h.t.Helper()
	var list batchv1.JobList
	if err := h.c.List(h.ctx, &list, client.InNamespace(testNamespace),
		client.MatchingLabels{fragilev1alpha1.LabelModelWatermark: name, labelComponent: component}); err != nil {
		h.t.Fatal(err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	return list.Items
}

func (h *harness) onlyJob(name, component string) *batchv1.Job {
	h.t.Helper()
	jobs := h.jobs(name, component)
	if len(jobs) != 1 {
		h.t.Fatalf("want 1 %s Job of %s, have %d: %v", component, name, len(jobs), jobNames(jobs))
	}
	return &jobs[0]
}

func jobNames(jobs []batchv1.Job) []string {
	var names []string
	for _, j := range jobs {
		names = append(names, j.Name)
	}
	return names
}

// finish ends a Job now with the given report.
func (h *harness) finish(job *batchv1.Job, rep report) {
	h.t.Helper()
	pod := finishJobObjects(job, h.clock.Now(), rep)
	status := pod.Status
	if err := h.c.Status().Update(h.ctx, job); err != nil {
		h.t.Fatal(err)
	}
	if err := h.c.Create(h.ctx, pod); err != nil {
		h.t.Fatal(err)
	}
	pod.Status = status
	if err := h.c.Status().Update(h.ctx, pod); err != nil {
		h.t.Fatal(err)
	}
}

// seal plays the training Job's part of writing the bundle Secret.
func (h *harness) seal(name string) {
	h.t.Helper()
	var s corev1.Secret
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: testNamespace, Name: name + "-bundle"}, &s); err != nil {
		h.t.Fatal(err)
	}
	s.Annotations[contract.AnnotationBundleDigest] = "sha256:b0b0"
	s.Data = map[string][]byte{contract.BundleDataKey: []byte("sealed")}
	if err := h.c.Update(h.ctx, &s); err != nil {
		h.t.Fatal(err)
	}
}

// train runs the whole training step: reconcile, finish the Job with rep, seal, reconcile.
func (h *harness) train(name string, rep report) {
	h.t.Helper()
	h.reconcile(name)
	if rep.exitCode == 0 {
		h.seal(name)
	}
	h.finish(h.onlyJob(name, componentTraining), rep)
	h.reconcile(name)
}

// verify finishes the running verification Job with rep and reconciles.
func (h *harness) verify(name string, rep report) {
	h.t.Helper()
	var running *batchv1.Job
	for _, j := range h.jobs(name, componentVerification) {
		if finished, _, _, _ := jobFinished(&j); !finished {
			running = j.DeepCopy()
		}
	}
	if running == nil {
		h.t.Fatalf("no running verification Job of %s", name)
	}
	h.finish(running, rep)
	h.reconcile(name)
}

// drainEvents returns the events recorded so far as "Type Reason" strings.
func (h *harness) drainEvents() []string {
	var out []string
	for {
		select {
		case e := <-h.rec.Events:
			f := strings.Fields(e)
			out = append(out, f[0]+" "+f[1])
		default:
			return out
		}
	}
}

// cond is a condition without its timestamps and prose, for cmp.Diff.
type cond struct{ Type, Status, Reason string }

func conds(cs []metav1.Condition) []cond {
	var out []cond
	for _, c := range cs {
		out = append(out, cond{c.Type, string(c.Status), c.Reason})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out
}

func wantConds(watermarked, intact, ready string) []cond {
	split := func(t, s string) cond {
		st, reason, _ := strings.Cut(s, "/")
		return cond{t, st, reason}
	}
	return []cond{
		split(fragilev1alpha1.ConditionIntact, intact),
		split(fragilev1alpha1.ConditionReady, ready),
		split(fragilev1alpha1.ConditionWatermarked, watermarked),
	}
}

// ignoreTimes drops every timestamp from a status diff.
var ignoreTimes = cmpopts.IgnoreTypes(metav1.Time{}, &metav1.Time{})

func diffStatus(want, got fragilev1alpha1.ModelWatermarkStatus) string {
	return cmp.Diff(want, got, ignoreTimes,
		cmpopts.IgnoreFields(fragilev1alpha1.ModelWatermarkStatus{}, "Conditions"))
}
