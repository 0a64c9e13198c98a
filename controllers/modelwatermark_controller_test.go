package controllers

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
	"github.com/fragile-operator/fragile-operator/pkg/contract"
	"github.com/fragile-operator/fragile-operator/pkg/metrics"
)

// TestReconcileBranches walks a ModelWatermark through each branch of the reconcile and checks
// the conditions, the events and the Jobs that result.
func TestReconcileBranches(t *testing.T) {
	const name = "mnist"
	tests := map[string]struct {
		mw    *fragilev1alpha1.ModelWatermark
		extra []client.Object
		steps func(h *harness)
		// want is "Status/Reason" for Watermarked, Intact and Ready.
		watermarked, intact, ready string
		// events are the events of the last step only, "Type Reason".
		events []string
		// trainingJobs and verificationJobs count the Jobs left at the end.
		trainingJobs, verificationJobs int
		check                          func(t *testing.T, h *harness)
	}{
		"new resource starts training": {
			mw:          newMW(name),
			steps:       func(h *harness) { h.reconcile(name) },
			watermarked: "Unknown/TrainingInProgress", intact: "Unknown/AwaitingWatermark", ready: "Unknown/TrainingInProgress",
			events:       []string{"Normal TrainingInProgress"},
			trainingJobs: 1,
		},
		"training progress shows in status": {
			mw: newMW(name),
			steps: func(h *harness) {
				h.reconcile(name)
				var s corev1.Secret
				key := types.NamespacedName{Namespace: testNamespace, Name: name + "-bundle"}
				if err := h.c.Get(h.ctx, key, &s); err != nil {
					h.t.Fatal(err)
				}
				s.Annotations[contract.AnnotationTrainingProgress] = "step 40/300, key match 87%"
				if err := h.c.Update(h.ctx, &s); err != nil {
					h.t.Fatal(err)
				}
				h.drainEvents()
				h.reconcile(name)
			},
			watermarked: "Unknown/TrainingInProgress", intact: "Unknown/AwaitingWatermark", ready: "Unknown/TrainingInProgress",
			trainingJobs: 1,
			check: func(t *testing.T, h *harness) {
				st := h.mw(name).Status
				if st.Training == nil || st.Training.Progress != "step 40/300, key match 87%" {
					t.Errorf("training status %+v, want the progress line", st.Training)
				}
				if c := findCond(st.Conditions, fragilev1alpha1.ConditionWatermarked); !strings.Contains(c.Message, "key match 87%") {
					t.Errorf("Watermarked message %q does not show progress", c.Message)
				}
			},
		},
		"training succeeded starts the first verification": {
			mw:          newMW(name),
			steps:       func(h *harness) { h.train(name, trainedOK(100)) },
			watermarked: "True/Watermarked", intact: "Unknown/VerificationPending", ready: "Unknown/VerificationPending",
			events:       []string{"Normal TrainingInProgress", "Normal Watermarked"},
			trainingJobs: 1, verificationJobs: 1,
			check: func(t *testing.T, h *harness) {
				st := h.mw(name).Status
				want := fragilev1alpha1.ModelWatermarkStatus{
					ObservedGeneration: 1,
					ModelDigest:        modelDigest,
					Bundle: &fragilev1alpha1.BundleStatus{SecretName: name + "-bundle", Key: "bundle",
						Digest: "sha256:b0b0", KeyID: "kid-3f2a9c", SizeBytes: 40960},
					Training: &fragilev1alpha1.TrainingStatus{JobName: trainingJobName(newMW(name), watermarkHash(newMW(name)), 1), Attempt: 1,
						Steps: 140, KeyMatchPercent: 100},
				}
				if d := diffStatus(want, st); d != "" {
					t.Errorf("status (-want +got):\n%s", d)
				}
				if st.NextVerificationTime == nil || !st.NextVerificationTime.Time.Equal(t0.Add(600*time.Second)) {
					t.Errorf("nextVerificationTime %v, want %v", st.NextVerificationTime, t0.Add(600*time.Second))
				}
			},
		},
		"training failed, retry scheduled": {
			mw:          newMW(name),
			steps:       func(h *harness) { h.train(name, trainedFailed("out of memory")) },
			watermarked: "Unknown/TrainingBackoff", intact: "Unknown/AwaitingWatermark", ready: "Unknown/TrainingBackoff",
			events:       []string{"Normal TrainingInProgress", "Warning TrainingBackoff"},
			trainingJobs: 1,
			check: func(t *testing.T, h *harness) {
				st := h.mw(name).Status
				c := findCond(st.Conditions, fragilev1alpha1.ConditionWatermarked)
				for _, want := range []string{"out of memory", "attempt 1 of 3", "attempt 2 starts at 2026-03-01T12:00:30Z"} {
					if !strings.Contains(c.Message, want) {
						t.Errorf("message %q lacks %q", c.Message, want)
					}
				}
				if ts := st.Training; ts.Attempt != 1 || ts.NextAttemptTime == nil || !ts.NextAttemptTime.Time.Equal(t0.Add(30*time.Second)) {
					t.Errorf("training status %+v, want attempt 1 and the next at t0+30s", ts)
				}
				if res := h.reconcile(name); res.RequeueAfter != 30*time.Second {
					t.Errorf("RequeueAfter %v, want the 30s backoff", res.RequeueAfter)
				}
			},
		},
		"training failed on the last attempt": {
			mw:          newMW(name, withMaxAttempts(1)),
			steps:       func(h *harness) { h.train(name, trainedFailed("out of memory")) },
			watermarked: "False/TrainingFailed", intact: "Unknown/AwaitingWatermark", ready: "False/TrainingFailed",
			events:       []string{"Normal TrainingInProgress", "Warning TrainingFailed"},
			trainingJobs: 1,
			check: func(t *testing.T, h *harness) {
				c := findCond(h.mw(name).Status.Conditions, fragilev1alpha1.ConditionWatermarked)
				if !strings.Contains(c.Message, "out of memory") || !strings.Contains(c.Message, "no retries left") {
					t.Errorf("message %q does not carry the report's reason and the exhausted retries", c.Message)
				}
				if res := h.reconcile(name); res.RequeueAfter != 0 {
					t.Errorf("RequeueAfter %v after the last attempt", res.RequeueAfter)
				}
			},
		},
		"training Job without a report": {
			mw: newMW(name, withMaxAttempts(1)),
			steps: func(h *harness) {
				h.train(name, report{message: "", exitCode: 137})
			},
			watermarked: "False/TrainingFailed", intact: "Unknown/AwaitingWatermark", ready: "False/TrainingFailed",
			events:       []string{"Normal TrainingInProgress", "Warning TrainingFailed"},
			trainingJobs: 1,
		},
		"trained bytes differ from the pin": {
			mw:          newMW(name, withPin(strings.Repeat("1", 64))),
			steps:       func(h *harness) { h.train(name, trainedOK(100)) },
			watermarked: "False/DigestMismatch", intact: "Unknown/AwaitingWatermark", ready: "False/DigestMismatch",
			events:       []string{"Normal TrainingInProgress", "Warning DigestMismatch"},
			trainingJobs: 1,
		},
		"intact": {
			mw: newMW(name, withPin(pinnedHex)),
			steps: func(h *harness) {
				h.train(name, trainedOK(100))
				h.drainEvents()
				h.verify(name, verifiedIntact(100))
			},
			watermarked: "True/Watermarked", intact: "True/Intact", ready: "True/Ready",
			events:       []string{"Normal Intact"},
			trainingJobs: 1, verificationJobs: 1,
			check: func(t *testing.T, h *harness) {
				st := h.mw(name).Status
				want := &fragilev1alpha1.VerificationStatus{JobName: name + "-verify-" + itoa(t0.Unix()),
					Result: fragilev1alpha1.VerificationIntact, TotalTriggers: ptr.To[int32](100),
					MismatchedTriggers: ptr.To[int32](0), DigestMatches: true}
				if d := cmp.Diff(want, st.LastVerification, ignoreTimes); d != "" {
					t.Errorf("lastVerification (-want +got):\n%s", d)
				}
				if st.LastSuccessfulVerificationTime == nil {
					t.Error("lastSuccessfulVerificationTime not set")
				}
				if got := testutil.ToFloat64(metrics.IntactStatus.WithLabelValues(testNamespace, name, "True")); got != 1 {
					t.Errorf("intact_status{True} = %v, want 1", got)
				}
			},
		},
		"tampered": {
			mw: newMW(name),
			steps: func(h *harness) {
				h.train(name, trainedOK(100))
				h.verify(name, verifiedIntact(100))
				h.clock.SetTime(t0.Add(10 * time.Minute))
				h.reconcile(name)
				h.drainEvents()
				h.verify(name, verifiedTampered(100, 7))
			},
			watermarked: "True/Watermarked", intact: "False/TamperDetected", ready: "False/TamperDetected",
			events:       []string{"Warning TamperDetected"},
			trainingJobs: 1, verificationJobs: 2,
			check: func(t *testing.T, h *harness) {
				st := h.mw(name).Status
				if lv := st.LastVerification; ptr.Deref(lv.MismatchedTriggers, -1) != 7 || lv.Result != fragilev1alpha1.VerificationTampered {
					t.Errorf("lastVerification %+v", st.LastVerification)
				}
				for status, want := range map[string]float64{"True": 0, "False": 1, "Unknown": 0} {
					if got := testutil.ToFloat64(metrics.IntactStatus.WithLabelValues(testNamespace, name, status)); got != want {
						t.Errorf("intact_status{%s} = %v, want %v", status, got, want)
					}
				}
				if got := testutil.ToFloat64(metrics.MismatchedTriggers.WithLabelValues(testNamespace, name)); got != 7 {
					t.Errorf("mismatched_triggers = %v, want 7", got)
				}
			},
		},
		"unreadable model is not tampering": {
			mw: newMW(name),
			steps: func(h *harness) {
				h.train(name, trainedOK(100))
				h.drainEvents()
				h.verify(name, verifyError("open /mnt/models/model.onnx: no such file or directory"))
			},
			watermarked: "True/Watermarked", intact: "Unknown/VerificationFailed", ready: "Unknown/VerificationFailed",
			events:       []string{"Warning VerificationFailed"},
			trainingJobs: 1, verificationJobs: 1,
		},
		"garbled report is not tampering": {
			mw: newMW(name),
			steps: func(h *harness) {
				h.train(name, trainedOK(100))
				h.drainEvents()
				h.verify(name, report{message: `{"result":"tampered","total":10`, exitCode: 1})
			},
			watermarked: "True/Watermarked", intact: "Unknown/VerificationFailed", ready: "Unknown/VerificationFailed",
			events:       []string{"Warning VerificationFailed"},
			trainingJobs: 1, verificationJobs: 1,
			check: func(t *testing.T, h *harness) {
				lv := h.mw(name).Status.LastVerification
				if lv.Result != fragilev1alpha1.VerificationFailed || lv.MismatchedTriggers != nil || lv.TotalTriggers != nil {
					t.Errorf("a run without a verdict must report no counts: %+v", lv)
				}
			},
		},
		"tampered report with exit status 0 is not trusted": {
			mw: newMW(name),
			steps: func(h *harness) {
				h.train(name, trainedOK(100))
				h.drainEvents()
				rep := verifiedTampered(100, 3)
				rep.exitCode = 0
				h.verify(name, rep)
			},
			watermarked: "True/Watermarked", intact: "Unknown/VerificationFailed", ready: "Unknown/VerificationFailed",
			events:       []string{"Warning VerificationFailed"},
			trainingJobs: 1, verificationJobs: 1,
		},
		"tampering stays until an intact verdict": {
			mw: newMW(name),
			steps: func(h *harness) {
				h.train(name, trainedOK(100))
				h.verify(name, verifiedTampered(100, 2))
				h.clock.SetTime(t0.Add(10 * time.Minute))
				h.reconcile(name)
				h.drainEvents()
				h.verify(name, verifyError("model file truncated"))
			},
			watermarked: "True/Watermarked", intact: "False/TamperDetected", ready: "False/TamperDetected",
			events:       nil, // no transition: still TamperDetected
			trainingJobs: 1, verificationJobs: 2,
			check: func(t *testing.T, h *harness) {
				c := findCond(h.mw(name).Status.Conditions, fragilev1alpha1.ConditionIntact)
				if !strings.Contains(c.Message, "reached no verdict") {
					t.Errorf("message %q does not mention the failed newer run", c.Message)
				}
			},
		},
		"restored model is intact again": {
			mw: newMW(name),
			steps: func(h *harness) {
				h.train(name, trainedOK(100))
				h.verify(name, verifiedTampered(100, 2))
				h.clock.SetTime(t0.Add(10 * time.Minute))
				h.reconcile(name)
				h.drainEvents()
				h.verify(name, verifiedIntact(100))
			},
			watermarked: "True/Watermarked", intact: "True/Intact", ready: "True/Ready",
			events:       []string{"Normal Intact"},
			trainingJobs: 1, verificationJobs: 2,
		},
		"pinned digest differs at verification": {
			mw: newMW(name, withPin(pinnedHex)),
			steps: func(h *harness) {
				h.train(name, trainedOK(100))
				h.drainEvents()
				rep := verifiedIntact(100)
				rep.message = strings.Replace(rep.message, modelDigest, otherDigest, 1)
				rep.message = strings.Replace(rep.message, `"digestMatches":true`, `"digestMatches":false`, 1)
				h.verify(name, rep)
			},
			watermarked: "True/Watermarked", intact: "True/Intact", ready: "False/DigestMismatch",
			events:       []string{"Normal Intact", "Warning DigestMismatch"},
			trainingJobs: 1, verificationJobs: 1,
		},
		"referenced key Secret missing": {
			mw:          newMW(name, withKeyRef("my-key")),
			steps:       func(h *harness) { h.reconcile(name) },
			watermarked: "False/KeySecretNotFound", intact: "Unknown/KeySecretNotFound", ready: "False/KeySecretNotFound",
			events: []string{"Warning KeySecretNotFound"},
			check: func(t *testing.T, h *harness) {
				if res := h.reconcile(name); res.RequeueAfter != keySecretRetry {
					t.Errorf("RequeueAfter %v, want %v", res.RequeueAfter, keySecretRetry)
				}
			},
		},
		"referenced key Secret present": {
			mw: newMW(name, withKeyRef("my-key")),
			extra: []client.Object{&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "my-key", Namespace: testNamespace},
				Data: map[string][]byte{"key": []byte("fragile-key-v1:00\n")}}},
			steps:       func(h *harness) { h.reconcile(name) },
			watermarked: "Unknown/TrainingInProgress", intact: "Unknown/AwaitingWatermark", ready: "Unknown/TrainingInProgress",
			events:       []string{"Normal TrainingInProgress"},
			trainingJobs: 1,
			check: func(t *testing.T, h *harness) {
				var s corev1.Secret
				err := h.c.Get(h.ctx, types.NamespacedName{Namespace: testNamespace, Name: name + "-key"}, &s)
				if err == nil {
					t.Error("a key was generated although spec.keySecretRef names one")
				}
				vol := h.onlyJob(name, componentTraining).Spec.Template.Spec.Volumes[1]
				if vol.Secret == nil || vol.Secret.SecretName != "my-key" {
					t.Errorf("key volume %+v, want Secret my-key", vol)
				}
			},
		},
		"generated key deleted after sealing is not replaced": {
			mw: newMW(name),
			steps: func(h *harness) {
				h.train(name, trainedOK(100))
				key := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-key", Namespace: testNamespace}}
				if err := h.c.Delete(h.ctx, key); err != nil {
					h.t.Fatal(err)
				}
				h.drainEvents()
				h.reconcile(name)
			},
			watermarked: "False/KeySecretNotFound", intact: "Unknown/KeySecretNotFound", ready: "False/KeySecretNotFound",
			events:       []string{"Warning KeySecretNotFound"},
			trainingJobs: 1, verificationJobs: 1,
			check: func(t *testing.T, h *harness) {
				var s corev1.Secret
				if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: testNamespace, Name: name + "-key"}, &s); err == nil {
					t.Error("a new key was generated for a model that was already watermarked")
				}
			},
		},
		"suspended before training": {
			mw:          newMW(name, suspended),
			steps:       func(h *harness) { h.reconcile(name) },
			watermarked: "Unknown/Suspended", intact: "Unknown/AwaitingWatermark", ready: "False/Suspended",
		},
		"suspended after watermarking starts no verification": {
			mw: newMW(name),
			steps: func(h *harness) {
				h.train(name, trainedOK(100))
				h.verify(name, verifiedIntact(100))
				mw := h.mw(name)
				mw.Spec.Suspend = true
				mw.Generation++
				if err := h.c.Update(h.ctx, mw); err != nil {
					h.t.Fatal(err)
				}
				h.clock.SetTime(t0.Add(time.Hour))
				h.drainEvents()
				h.reconcile(name)
			},
			watermarked: "True/Watermarked", intact: "True/Intact", ready: "False/Suspended",
			trainingJobs: 1, verificationJobs: 1,
		},
		"triggers change retrains": {
			mw: newMW(name),
			steps: func(h *harness) {
				h.train(name, trainedOK(100))
				h.verify(name, verifiedIntact(100))
				mw := h.mw(name)
				mw.Spec.Triggers = 200
				mw.Generation++
				if err := h.c.Update(h.ctx, mw); err != nil {
					h.t.Fatal(err)
				}
				h.drainEvents()
				h.reconcile(name)
			},
			watermarked: "Unknown/TrainingInProgress", intact: "Unknown/AwaitingWatermark", ready: "Unknown/TrainingInProgress",
			events:       []string{"Normal TrainingInProgress"},
			trainingJobs: 1, verificationJobs: 0,
			check: func(t *testing.T, h *harness) {
				job := h.onlyJob(name, componentTraining)
				mw := h.mw(name)
				if job.Name != trainingJobName(mw, watermarkHash(mw), 1) {
					t.Errorf("training Job %s is not the one for the new spec", job.Name)
				}
				if !slices.Contains(job.Spec.Template.Spec.Containers[0].Command, "200") {
					t.Errorf("command %v does not ask for 200 triggers", job.Spec.Template.Spec.Containers[0].Command)
				}
				var s corev1.Secret
				if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: testNamespace, Name: name + "-bundle"}, &s); err != nil {
					t.Fatal(err)
				}
				if len(s.Data) != 0 || s.Annotations[contract.AnnotationBundleDigest] != "" ||
					s.Annotations[contract.AnnotationWatermarkHash] != watermarkHash(mw) {
					t.Errorf("bundle Secret not reset for the new watermark: %v %v", s.Annotations, s.Data)
				}
				if st := h.mw(name).Status; st.Bundle != nil || st.LastVerification != nil {
					t.Errorf("status still describes the old watermark: %+v", st)
				}
			},
		},
		"period change does not retrain": {
			mw: newMW(name),
			steps: func(h *harness) {
				h.train(name, trainedOK(100))
				h.verify(name, verifiedIntact(100))
				mw := h.mw(name)
				mw.Spec.Verification.PeriodSeconds = 3600
				mw.Spec.Training.MaxSteps = ptr.To[int32](50)
				mw.Generation++
				if err := h.c.Update(h.ctx, mw); err != nil {
					h.t.Fatal(err)
				}
				h.drainEvents()
				h.reconcile(name)
			},
			watermarked: "True/Watermarked", intact: "True/Intact", ready: "True/Ready",
			trainingJobs: 1, verificationJobs: 1,
			check: func(t *testing.T, h *harness) {
				st := h.mw(name).Status
				if want := t0.Add(time.Hour); st.NextVerificationTime == nil || !st.NextVerificationTime.Time.Equal(want) {
					t.Errorf("nextVerificationTime %v, want %v", st.NextVerificationTime, want)
				}
				if st.ObservedGeneration != 2 {
					t.Errorf("observedGeneration %d, want 2", st.ObservedGeneration)
				}
			},
		},
		"history is pruned but the newest verdict is kept": {
			mw: newMW(name),
			steps: func(h *harness) {
				h.train(name, trainedOK(100))
				h.verify(name, verifiedIntact(100))
				for i := 1; i <= 5; i++ {
					h.clock.SetTime(t0.Add(time.Duration(i) * 10 * time.Minute))
					h.reconcile(name)
					h.verify(name, verifyError("registry unreachable"))
				}
				h.drainEvents()
				h.reconcile(name)
			},
			watermarked: "True/Watermarked", intact: "Unknown/VerificationFailed", ready: "Unknown/VerificationFailed",
			trainingJobs: 1, verificationJobs: verificationHistoryLimit + 1,
			check: func(t *testing.T, h *harness) {
				names := jobNames(h.jobs(name, componentVerification))
				if first := name + "-verify-" + itoa(t0.Unix()); !slices.Contains(names, first) {
					t.Errorf("verification Jobs %v lost the last verdict %s", names, first)
				}
				st := h.mw(name).Status
				if st.LastSuccessfulVerificationTime == nil || !st.LastSuccessfulVerificationTime.Time.Equal(t0) {
					t.Errorf("lastSuccessfulVerificationTime %v, want %v", st.LastSuccessfulVerificationTime, t0)
				}
			},
		},
	}
	for name_, tc := range tests {
		t.Run(name_, func(t *testing.T) {
			objs := append([]client.Object{tc.mw}, tc.extra...)
			h := newHarness(t, objs...)
			tc.steps(h)
			st := h.mw(name).Status
			if d := cmp.Diff(wantConds(tc.watermarked, tc.intact, tc.ready), conds(st.Conditions)); d != "" {
				t.Errorf("conditions (-want +got):\n%s", d)
				for _, c := range st.Conditions {
					t.Logf("%s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message)
				}
			}
			if d := cmp.Diff(tc.events, h.drainEvents()); d != "" {
				t.Errorf("events of the last step (-want +got):\n%s", d)
			}
			if n := len(h.jobs(name, componentTraining)); n != tc.trainingJobs {
				t.Errorf("%d training Jobs, want %d", n, tc.trainingJobs)
			}
			if n := len(h.jobs(name, componentVerification)); n != tc.verificationJobs {
				t.Errorf("%d verification Jobs, want %d: %v", n, tc.verificationJobs, jobNames(h.jobs(name, componentVerification)))
			}
			for _, c := range st.Conditions {
				if c.ObservedGeneration != st.ObservedGeneration {
					t.Errorf("condition %s observedGeneration %d, status %d", c.Type, c.ObservedGeneration, st.ObservedGeneration)
				}
			}
			if tc.check != nil {
				tc.check(t, h)
			}
		})
	}
}

// TestTrainingJobShape checks the training Job's command, mounts, identity and owner, and the
// RBAC that lets it write exactly one Secret.
// TestTrainingJobNormalization: spec.model.input reaches the training Job as the
// --input-mean and --input-std flags, one comma-separated value per channel.
func TestTrainingJobNormalization(t *testing.T) {
	mw := newMW("cifar", func(mw *fragilev1alpha1.ModelWatermark) {
		mw.Spec.Model.InputRange = fragilev1alpha1.InputRange{Min: "0", Max: "1"}
		mw.Spec.Model.Input = &fragilev1alpha1.ModelInput{Mean: []string{"0.4914", "0.4822", "0.4465"}, Std: []string{"0.2471", "0.2435", "0.2616"}}
	})
	h := newHarness(t, mw)
	h.reconcile("cifar")
	cmd := strings.Join(h.onlyJob("cifar", componentTraining).Spec.Template.Spec.Containers[0].Command, " ")
	if want := "--input-range 0,1 --input-mean 0.4914,0.4822,0.4465 --input-std 0.2471,0.2435,0.2616"; !strings.Contains(cmd, want) {
		t.Errorf("command %q does not contain %q", cmd, want)
	}
}

func TestTrainingJobShape(t *testing.T) {
	mw := newMW("mnist", func(mw *fragilev1alpha1.ModelWatermark) {
		mw.Spec.Training.Lambda = "150"
		mw.Spec.Training.MaxSteps = ptr.To[int32](300)
	})
	h := newHarness(t, mw)
	h.reconcile("mnist")
	job := h.onlyJob("mnist", componentTraining)

	wantCmd := []string{"fragile", "watermark", "--model", "/mnt/models/mnist-7/model.onnx",
		"--key", "/var/run/fragile/key/key", "--out-secret", "mnist-bundle", "--triggers", "100",
		"--input-range", "0,255", "--lambda", "150", "--max-steps", "300", "--report", "/dev/termination-log"}
	pod := job.Spec.Template.Spec
	if d := cmp.Diff(wantCmd, pod.Containers[0].Command); d != "" {
		t.Errorf("command (-want +got):\n%s", d)
	}
	if *job.Spec.BackoffLimit != 0 || *job.Spec.ActiveDeadlineSeconds != 3600 {
		t.Errorf("backoffLimit %d, activeDeadlineSeconds %d", *job.Spec.BackoffLimit, *job.Spec.ActiveDeadlineSeconds)
	}
	if pod.ServiceAccountName != "mnist-trainer" || !*pod.AutomountServiceAccountToken {
		t.Errorf("service account %q automount %v", pod.ServiceAccountName, *pod.AutomountServiceAccountToken)
	}
	owner := metav1.GetControllerOf(job)
	if owner == nil || owner.Kind != "ModelWatermark" || owner.Name != "mnist" {
		t.Errorf("controller reference %+v", owner)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range pod.Containers[0].VolumeMounts {
		mounts[m.Name] = m
	}
	if m := mounts["model"]; m.MountPath != "/mnt/models" || !m.ReadOnly {
		t.Errorf("model mount %+v", m)
	}
	if m := mounts["key"]; m.MountPath != "/var/run/fragile/key" || !m.ReadOnly {
		t.Errorf("key mount %+v", m)
	}
	var env []string
	for _, e := range pod.Containers[0].Env {
		env = append(env, e.Name)
	}
	if d := cmp.Diff([]string{"POD_NAMESPACE", contract.EnvWatermarkHash}, env); d != "" {
		t.Errorf("env (-want +got):\n%s", d)
	}

	var role rbacv1.Role
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: testNamespace, Name: "mnist-trainer"}, &role); err != nil {
		t.Fatal(err)
	}
	wantRules := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"},
		ResourceNames: []string{"mnist-bundle"}, Verbs: []string{"get", "patch", "update"}}}
	if d := cmp.Diff(wantRules, role.Rules); d != "" {
		t.Errorf("trainer Role rules (-want +got):\n%s", d)
	}
	var binding rbacv1.RoleBinding
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: testNamespace, Name: "mnist-trainer"}, &binding); err != nil {
		t.Fatal(err)
	}
	if binding.Subjects[0].Name != "mnist-trainer" || binding.RoleRef.Name != "mnist-trainer" {
		t.Errorf("binding %+v", binding)
	}

	var key corev1.Secret
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: testNamespace, Name: "mnist-key"}, &key); err != nil {
		t.Fatal(err)
	}
	if got, want := string(key.Data["key"]), "fragile-key-v1:"+strings.Repeat("ab", 32)+"\n"; got != want {
		t.Errorf("generated key %q, want %q", got, want)
	}
	if key.Immutable == nil || !*key.Immutable || metav1.GetControllerOf(&key) == nil {
		t.Errorf("key Secret must be immutable and owned: %+v", key.ObjectMeta)
	}
}

// TestVerificationJobShape checks the verification Job: no API access, bundle and key read-only,
// the model from a hostPath volume at its mountPath.
func TestVerificationJobShape(t *testing.T) {
	mw := newMW("local", func(mw *fragilev1alpha1.ModelWatermark) {
		mw.Spec.Model.URI = "/models/mnist-7.onnx"
		mw.Spec.Model.Volume = &fragilev1alpha1.ModelVolume{MountPath: "/models",
			HostPath: &corev1.HostPathVolumeSource{Path: "/srv/models"}}
	})
	h := newHarness(t, mw)
	h.train("local", trainedOK(100))
	job := h.onlyJob("local", componentVerification)
	pod := job.Spec.Template.Spec

	wantCmd := []string{"fragile", "verify", "--model", "/models/mnist-7.onnx",
		"--bundle", "/var/run/fragile/bundle/bundle", "--bundle-digest", "sha256:b0b0", "--key", "/var/run/fragile/key/key",
		"--json", "--report", "/dev/termination-log"}
	if d := cmp.Diff(wantCmd, pod.Containers[0].Command); d != "" {
		t.Errorf("command (-want +got):\n%s", d)
	}
	if *pod.AutomountServiceAccountToken || pod.ServiceAccountName != "" {
		t.Errorf("verification must run without API credentials: %q %v", pod.ServiceAccountName, *pod.AutomountServiceAccountToken)
	}
	if *job.Spec.BackoffLimit != 0 || *job.Spec.ActiveDeadlineSeconds != 300 {
		t.Errorf("backoffLimit %d, activeDeadlineSeconds %d", *job.Spec.BackoffLimit, *job.Spec.ActiveDeadlineSeconds)
	}
	for _, m := range pod.Containers[0].VolumeMounts {
		if m.Name != "tmp" && !m.ReadOnly {
			t.Errorf("mount %s is writable", m.Name)
		}
	}
	var hostPath *corev1.HostPathVolumeSource
	for _, v := range pod.Volumes {
		if v.Name == "model" {
			hostPath = v.HostPath
		}
	}
	if hostPath == nil || hostPath.Path != "/srv/models" {
		t.Errorf("model volume %+v", pod.Volumes)
	}
	if job.Annotations[annotationScheduledTime] != t0.Format(time.RFC3339) {
		t.Errorf("scheduled time %q", job.Annotations[annotationScheduledTime])
	}
}

// TestVerificationSchedule checks slot arithmetic: one Job per period, named by its slot, and a
// single catch-up Job in the newest missed slot after downtime.
func TestVerificationSchedule(t *testing.T) {
	h := newHarness(t, newMW("mnist"))
	h.train("mnist", trainedOK(100))
	h.verify("mnist", verifiedIntact(100))

	// Before the period has elapsed: no Job, and a requeue for exactly the remaining time.
	h.clock.SetTime(t0.Add(4 * time.Minute))
	if res := h.reconcile("mnist"); res.RequeueAfter != 6*time.Minute {
		t.Errorf("RequeueAfter %v, want 6m", res.RequeueAfter)
	}
	if n := len(h.jobs("mnist", componentVerification)); n != 1 {
		t.Fatalf("%d verification Jobs before the period elapsed", n)
	}

	// Period elapsed: exactly one new Job, in slot t0+10m, and no requeue while it runs.
	h.clock.SetTime(t0.Add(10*time.Minute + 3*time.Second))
	if res := h.reconcile("mnist"); res.RequeueAfter != 0 {
		t.Errorf("RequeueAfter %v while a verification runs", res.RequeueAfter)
	}
	h.reconcile("mnist")
	want := []string{"mnist-verify-" + itoa(t0.Unix()), "mnist-verify-" + itoa(t0.Add(10*time.Minute).Unix())}
	if d := cmp.Diff(want, jobNames(h.jobs("mnist", componentVerification))); d != "" {
		t.Errorf("verification Jobs (-want +got):\n%s", d)
	}
	h.verify("mnist", verifiedIntact(100))

	// Three hours of downtime: one catch-up Job in the newest missed slot, not eighteen.
	h.clock.SetTime(t0.Add(3*time.Hour + 5*time.Minute))
	h.reconcile("mnist")
	jobs := h.jobs("mnist", componentVerification)
	if len(jobs) != 3 || jobs[2].Name != "mnist-verify-"+itoa(t0.Add(3*time.Hour).Unix()) {
		t.Errorf("after downtime: %v", jobNames(jobs))
	}
	if st := h.mw("mnist").Status; !st.NextVerificationTime.Time.Equal(t0.Add(3*time.Hour + 10*time.Minute)) {
		t.Errorf("nextVerificationTime %v", st.NextVerificationTime)
	}
}

// TestStatusWrittenOnlyWhenChanged: a reconcile with nothing new writes nothing.
func TestStatusWrittenOnlyWhenChanged(t *testing.T) {
	h := newHarness(t, newMW("mnist"))
	h.train("mnist", trainedOK(100))
	h.verify("mnist", verifiedIntact(100))
	before := h.mw("mnist").ResourceVersion
	h.clock.SetTime(t0.Add(time.Minute))
	h.reconcile("mnist")
	h.reconcile("mnist")
	if after := h.mw("mnist").ResourceVersion; after != before {
		t.Errorf("status rewritten without a change: resourceVersion %s -> %s", before, after)
	}
	if ev := h.drainEvents(); len(ev) != 3 { // TrainingInProgress, Watermarked, Intact: one each
		t.Errorf("events %v", ev)
	}
}

// TestReportReadFromJobAfterPodIsGone: the report is copied onto the Job, so the verdict
// survives Pod garbage collection.
func TestReportReadFromJobAfterPodIsGone(t *testing.T) {
	h := newHarness(t, newMW("mnist"))
	h.train("mnist", trainedOK(100))
	h.verify("mnist", verifiedTampered(100, 4))
	var pods corev1.PodList
	if err := h.c.List(h.ctx, &pods, client.InNamespace(testNamespace)); err != nil {
		t.Fatal(err)
	}
	for i := range pods.Items {
		if err := h.c.Delete(h.ctx, &pods.Items[i]); err != nil {
			t.Fatal(err)
		}
	}
	h.clock.SetTime(t0.Add(time.Minute))
	h.reconcile("mnist")
	if c := findCond(h.mw("mnist").Status.Conditions, fragilev1alpha1.ConditionIntact); c.Reason != fragilev1alpha1.ReasonTamperDetected {
		t.Errorf("Intact %s/%s after the Pods were deleted", c.Status, c.Reason)
	}
}

// TestDeletedResourceForgetsMetrics: no stale series remain for a deleted resource.
func TestDeletedResourceForgetsMetrics(t *testing.T) {
	h := newHarness(t, newMW("gone"))
	h.train("gone", trainedOK(100))
	h.verify("gone", verifiedTampered(100, 1))
	if testutil.CollectAndCount(metrics.IntactStatus) == 0 {
		t.Fatal("no intact_status series before deletion")
	}
	if err := h.c.Delete(h.ctx, h.mw("gone")); err != nil {
		t.Fatal(err)
	}
	h.reconcile("gone")
	for _, status := range []string{"True", "False", "Unknown"} {
		if metrics.IntactStatus.DeleteLabelValues(testNamespace, "gone", status) {
			t.Errorf("intact_status{status=%q} of a deleted resource still exported", status)
		}
	}
	if metrics.MismatchedTriggers.DeleteLabelValues(testNamespace, "gone") {
		t.Error("mismatched_triggers of a deleted resource still exported")
	}
}

// TestLocateModel covers the three URI forms.
func TestLocateModel(t *testing.T) {
	tests := map[string]struct {
		src     fragilev1alpha1.ModelSource
		arg     string
		mount   string
		wantErr bool
	}{
		"pvc":            {src: fragilev1alpha1.ModelSource{URI: "pvc://models/a/b.onnx"}, arg: "/mnt/models/a/b.onnx", mount: "/mnt/models"},
		"https":          {src: fragilev1alpha1.ModelSource{URI: "https://example.com/m.onnx"}, arg: "https://example.com/m.onnx"},
		"path":           {src: fragilev1alpha1.ModelSource{URI: "/m/x.onnx", Volume: &fragilev1alpha1.ModelVolume{MountPath: "/m"}}, arg: "/m/x.onnx", mount: "/m"},
		"pvc no path":    {src: fragilev1alpha1.ModelSource{URI: "pvc://models"}, wantErr: true},
		"path no volume": {src: fragilev1alpha1.ModelSource{URI: "/m/x.onnx"}, wantErr: true},
		"s3":             {src: fragilev1alpha1.ModelSource{URI: "s3://bucket/m.onnx"}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			loc, err := locateModel(tc.src)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if loc.arg != tc.arg {
				t.Errorf("arg %q, want %q", loc.arg, tc.arg)
			}
			if got := ""; loc.mount != nil {
				got = loc.mount.MountPath
				if got != tc.mount || !loc.mount.ReadOnly {
					t.Errorf("mount %+v, want read-only at %q", loc.mount, tc.mount)
				}
			} else if tc.mount != "" {
				t.Errorf("no mount, want %q", tc.mount)
			}
		})
	}
}

// TestWatermarkHash: the hash moves with what defines a watermark and stays put otherwise.
func TestWatermarkHash(t *testing.T) {
	base := watermarkHash(newMW("m"))
	changes := map[string]struct {
		opt     mwOption
		retrain bool
	}{
		"uri":         {func(mw *fragilev1alpha1.ModelWatermark) { mw.Spec.Model.URI = "pvc://models/other.onnx" }, true},
		"sha256":      {withPin(pinnedHex), true},
		"triggers":    {func(mw *fragilev1alpha1.ModelWatermark) { mw.Spec.Triggers = 50 }, true},
		"input range": {func(mw *fragilev1alpha1.ModelWatermark) { mw.Spec.Model.InputRange.Max = "1" }, true},
		"input normalisation": {func(mw *fragilev1alpha1.ModelWatermark) {
			mw.Spec.Model.Input = &fragilev1alpha1.ModelInput{Mean: []string{"0.5"}, Std: []string{"0.25"}}
		}, true},
		"key":     {withKeyRef("k"), true},
		"period":  {func(mw *fragilev1alpha1.ModelWatermark) { mw.Spec.Verification.PeriodSeconds = 60 }, false},
		"lambda":  {func(mw *fragilev1alpha1.ModelWatermark) { mw.Spec.Training.Lambda = "4000" }, false},
		"suspend": {suspended, false},
	}
	for name, tc := range changes {
		if got := watermarkHash(newMW("m", tc.opt)) != base; got != tc.retrain {
			t.Errorf("%s: hash changed = %v, want %v", name, got, tc.retrain)
		}
	}
}

// TestInterpretVerification: only a well-formed, self-consistent report is a verdict.
func TestInterpretVerification(t *testing.T) {
	tests := map[string]struct {
		term termination
		want fragilev1alpha1.VerificationResult
	}{
		"intact":                 {termination{found: true, message: verifiedIntact(10).message, exitCode: 0}, fragilev1alpha1.VerificationIntact},
		"tampered":               {termination{found: true, message: verifiedTampered(10, 1).message, exitCode: 1}, fragilev1alpha1.VerificationTampered},
		"no message":             {termination{found: false}, fragilev1alpha1.VerificationFailed},
		"empty message":          {termination{found: true, exitCode: 1}, fragilev1alpha1.VerificationFailed},
		"not JSON":               {termination{found: true, message: "panic: runtime error", exitCode: 2}, fragilev1alpha1.VerificationFailed},
		"error result":           {termination{found: true, message: verifyError("x").message, exitCode: 2}, fragilev1alpha1.VerificationFailed},
		"unknown result":         {termination{found: true, message: `{"result":"maybe","total":3}`, exitCode: 1}, fragilev1alpha1.VerificationFailed},
		"tampered zero mismatch": {termination{found: true, message: `{"result":"tampered","total":3,"mismatched":0}`, exitCode: 1}, fragilev1alpha1.VerificationFailed},
		"mismatch over total":    {termination{found: true, message: `{"result":"tampered","total":3,"mismatched":4}`, exitCode: 1}, fragilev1alpha1.VerificationFailed},
		"intact with mismatches": {termination{found: true, message: `{"result":"intact","total":3,"mismatched":1}`, exitCode: 0}, fragilev1alpha1.VerificationFailed},
		"intact but exit 1":      {termination{found: true, message: verifiedIntact(10).message, exitCode: 1}, fragilev1alpha1.VerificationFailed},
		"no triggers":            {termination{found: true, message: `{"result":"intact","total":0}`, exitCode: 0}, fragilev1alpha1.VerificationFailed},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v := interpretVerification(jobRun{job: &batchv1.Job{}, finished: true, term: tc.term})
			if v.result != tc.want {
				t.Errorf("result %s, want %s (%s)", v.result, tc.want, v.message)
			}
			if v.result == fragilev1alpha1.VerificationFailed && v.message == "" {
				t.Error("a Failed result must say why")
			}
		})
	}
}

func findCond(cs []metav1.Condition, t string) metav1.Condition {
	for _, c := range cs {
		if c.Type == t {
			return c
		}
	}
	return metav1.Condition{}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
