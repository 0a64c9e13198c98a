package controllers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
	"github.com/fragile-operator/fragile-operator/pkg/contract"
	"github.com/fragile-operator/fragile-operator/pkg/metrics"
)

// Integration tests against a real API server: one per acceptance line of the operator issue.

// TestEnvtestCreateStartsTraining: creating a ModelWatermark yields an owned key Secret, an
// owned bundle Secret, the trainer's narrow RBAC and a training Job with the right command.
func TestEnvtestCreateStartsTraining(t *testing.T) {
	s := envtestSuite(t)
	ns := s.namespace(t)
	mw := s.create(t, newMW("mnist", inNamespace(ns)))

	job := s.waitJob(t, ns, "mnist", componentTraining, nil)
	s.assertOwned(t, mw, job)
	wantCmd := []string{"fragile", "watermark", "--model", "/mnt/models/mnist-7/model.onnx",
		"--key", "/var/run/fragile/key/key", "--out-secret", "mnist-bundle", "--triggers", "100",
		"--input-range", "0,255", "--report", "/dev/termination-log"}
	if d := cmp.Diff(wantCmd, job.Spec.Template.Spec.Containers[0].Command); d != "" {
		t.Errorf("training command (-want +got):\n%s", d)
	}

	var key corev1.Secret
	s.get(t, ns, "mnist-key", &key)
	s.assertOwned(t, mw, &key)
	if k := string(key.Data["key"]); !strings.HasPrefix(k, "fragile-key-v1:") || len(k) != len("fragile-key-v1:")+64+1 {
		t.Errorf("generated key has the wrong format (length %d)", len(k))
	}
	var bundle corev1.Secret
	s.get(t, ns, "mnist-bundle", &bundle)
	s.assertOwned(t, mw, &bundle)

	var role rbacv1.Role
	s.get(t, ns, "mnist-trainer", &role)
	if d := cmp.Diff([]string{"mnist-bundle"}, role.Rules[0].ResourceNames); d != "" || len(role.Rules) != 1 {
		t.Errorf("trainer Role %+v", role.Rules)
	}
	s.waitCond(t, ns, "mnist", fragilev1alpha1.ConditionWatermarked, "Unknown", fragilev1alpha1.ReasonTrainingInProgress)

	// The defaults came from the schema, not from the controller.
	got := s.mw(t, ns, "mnist").Spec
	if got.Verification.PeriodSeconds != 600 || got.Verification.TimeoutSeconds != 300 || got.Training.TimeoutSeconds != 3600 {
		t.Errorf("schema defaults not applied: %+v %+v", got.Verification, got.Training)
	}
}

// TestEnvtestLifecycle: training completes -> Watermarked; intact -> Intact and Ready; tampered
// -> Intact=False TamperDetected with a Warning event and the metric; kubectl describe reads well.
func TestEnvtestLifecycle(t *testing.T) {
	s := envtestSuite(t)
	ns := s.namespace(t)
	s.create(t, newMW("mnist", inNamespace(ns)))

	// Training finishes with a report: Watermarked=True and the first verification starts.
	s.train(t, ns, "mnist", trainedOK(100))
	s.waitCond(t, ns, "mnist", fragilev1alpha1.ConditionWatermarked, "True", fragilev1alpha1.ReasonWatermarked)
	verify := s.waitJob(t, ns, "mnist", componentVerification, running)
	wantCmd := []string{"fragile", "verify", "--model", "/mnt/models/mnist-7/model.onnx",
		"--bundle", "/var/run/fragile/bundle/bundle", "--bundle-digest", "sha256:b0b0", "--key", "/var/run/fragile/key/key",
		"--json", "--report", "/dev/termination-log"}
	if d := cmp.Diff(wantCmd, verify.Spec.Template.Spec.Containers[0].Command); d != "" {
		t.Errorf("verification command (-want +got):\n%s", d)
	}

	// An intact verdict: Intact=True and Ready=True.
	s.finish(t, verify, verifiedIntact(100))
	s.waitCond(t, ns, "mnist", fragilev1alpha1.ConditionIntact, "True", fragilev1alpha1.ReasonIntact)
	s.waitCond(t, ns, "mnist", fragilev1alpha1.ConditionReady, "True", fragilev1alpha1.ReasonReady)
	if st := s.mw(t, ns, "mnist").Status; st.Bundle == nil || st.Bundle.SecretName != "mnist-bundle" {
		t.Errorf("status.bundle %+v", st.Bundle)
	}

	// The period passes (fake clock); a poke stands in for the RequeueAfter timer, which runs on
	// real time. A second verification finds 7 changed labels.
	s.clock.Step(600 * time.Second)
	s.poke(t, ns, "mnist")
	verify = s.waitJob(t, ns, "mnist", componentVerification, running)
	s.finish(t, verify, verifiedTampered(100, 7))
	s.waitCond(t, ns, "mnist", fragilev1alpha1.ConditionIntact, "False", fragilev1alpha1.ReasonTamperDetected)
	s.waitCond(t, ns, "mnist", fragilev1alpha1.ConditionReady, "False", fragilev1alpha1.ReasonTamperDetected)
	s.waitEvent(t, ns, "mnist", corev1.EventTypeWarning, fragilev1alpha1.ReasonTamperDetected)
	eventually(t, "the tamper metric", func() (bool, string) {
		f := testutil.ToFloat64(metrics.IntactStatus.WithLabelValues(ns, "mnist", "False"))
		m := testutil.ToFloat64(metrics.MismatchedTriggers.WithLabelValues(ns, "mnist"))
		return f == 1 && m == 7, fmt.Sprintf("intact_status{False}=%v mismatched_triggers=%v", f, m)
	})

	// kubectl aligns columns with runs of spaces; compare word sequences.
	out := s.describe(t, ns, "mnist")
	words := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{
		"Reason: TamperDetected Status: False Type: Intact",
		"Reason: TamperDetected Status: False Type: Ready",
		"Reason: Watermarked Status: True Type: Watermarked",
		"found 7 of 100 triggers with a changed label: the model's weights are not the ones that were watermarked",
		"Mismatched Triggers: 7 Result: Tampered",
		"Warning TamperDetected",
	} {
		if !strings.Contains(words, want) {
			t.Errorf("kubectl describe lacks %q", want)
		}
	}
	if t.Failed() || os.Getenv("FRAGILE_SHOW_DESCRIBE") != "" {
		t.Logf("kubectl describe modelwatermark mnist:\n%s", out)
	}
}

// TestEnvtestUnreadableModel: a verification that cannot read the model is Intact=Unknown
// (VerificationFailed) and raises no tamper event.
func TestEnvtestUnreadableModel(t *testing.T) {
	s := envtestSuite(t)
	ns := s.namespace(t)
	s.create(t, newMW("mnist", inNamespace(ns)))
	s.train(t, ns, "mnist", trainedOK(100))
	verify := s.waitJob(t, ns, "mnist", componentVerification, running)
	s.finish(t, verify, verifyError("open /mnt/models/mnist-7/model.onnx: no such file or directory"))

	s.waitCond(t, ns, "mnist", fragilev1alpha1.ConditionIntact, "Unknown", fragilev1alpha1.ReasonVerificationFailed)
	s.waitEvent(t, ns, "mnist", corev1.EventTypeWarning, fragilev1alpha1.ReasonVerificationFailed)
	for _, e := range s.events(t, ns, "mnist") {
		if e.Reason == fragilev1alpha1.ReasonTamperDetected {
			t.Errorf("tamper event for an unreadable model: %s", e.Note)
		}
	}
	if f := testutil.ToFloat64(metrics.IntactStatus.WithLabelValues(ns, "mnist", "False")); f != 0 {
		t.Errorf("intact_status{False} = %v for an unreadable model", f)
	}
	c := findCond(s.mw(t, ns, "mnist").Status.Conditions, fragilev1alpha1.ConditionIntact)
	if !strings.Contains(c.Message, "no such file or directory") || !strings.Contains(c.Message, "says nothing about tampering") {
		t.Errorf("Intact message %q", c.Message)
	}
}

// TestEnvtestInvalidSpecRejected: the API server refuses malformed specs with messages that say
// what to fix.
func TestEnvtestInvalidSpecRejected(t *testing.T) {
	s := envtestSuite(t)
	ns := s.namespace(t)
	tests := map[string]struct {
		opt  mwOption
		name string
		want string
	}{
		"unsupported scheme": {opt: func(mw *fragilev1alpha1.ModelWatermark) { mw.Spec.Model.URI = "gs://bucket/m.onnx" },
			want: "spec.model.uri: Invalid value: uri must be pvc://CLAIM/PATH, s3://BUCKET/KEY, http(s)://HOST/PATH, or an absolute path inside spec.model.volume"},
		"s3 model without credentials": {opt: func(mw *fragilev1alpha1.ModelWatermark) { mw.Spec.Model.URI = "s3://bucket/m.onnx" },
			want: "spec.model.s3 (the Secret with the endpoint and credentials) is required for an s3:// uri"},
		"s3 bundle without credentials": {opt: func(mw *fragilev1alpha1.ModelWatermark) {
			mw.Spec.Bundle = &fragilev1alpha1.BundleStorage{URI: "s3://bundles/b"}
		}, want: "spec.bundle.s3 (the Secret with the endpoint and credentials) is required"},
		"bundle in a Secret by uri": {opt: func(mw *fragilev1alpha1.ModelWatermark) {
			mw.Spec.Bundle = &fragilev1alpha1.BundleStorage{URI: "secret://x/bundle"}
		}, want: "spec.bundle.uri must be pvc://CLAIM/PATH or s3://BUCKET/KEY"},
		"pvc bundle without path": {opt: func(mw *fragilev1alpha1.ModelWatermark) {
			mw.Spec.Bundle = &fragilev1alpha1.BundleStorage{URI: "pvc://claim"}
		}, want: "a pvc:// bundle uri must name a claim and a file inside it"},
		"pvc without path": {opt: func(mw *fragilev1alpha1.ModelWatermark) { mw.Spec.Model.URI = "pvc://models" },
			want: "a pvc:// uri must name a claim and a file inside it: pvc://CLAIM/PATH"},
		"dot-dot": {opt: func(mw *fragilev1alpha1.ModelWatermark) { mw.Spec.Model.URI = "pvc://models/../etc/passwd" },
			want: "uri must not contain '..' path segments"},
		"path without volume": {opt: func(mw *fragilev1alpha1.ModelWatermark) { mw.Spec.Model.URI = "/models/m.onnx" },
			want: "uri is an absolute path, so spec.model.volume must say which volume holds it"},
		"path outside the volume": {opt: func(mw *fragilev1alpha1.ModelWatermark) {
			mw.Spec.Model.URI = "/data/m.onnx"
			mw.Spec.Model.Volume = &fragilev1alpha1.ModelVolume{MountPath: "/models", HostPath: &corev1.HostPathVolumeSource{Path: "/srv"}}
		}, want: "must lie under spec.model.volume.mountPath"},
		"two volume sources": {opt: func(mw *fragilev1alpha1.ModelWatermark) {
			mw.Spec.Model.URI = "/models/m.onnx"
			mw.Spec.Model.Volume = &fragilev1alpha1.ModelVolume{MountPath: "/models",
				HostPath: &corev1.HostPathVolumeSource{Path: "/srv"}, NFS: &corev1.NFSVolumeSource{Server: "nfs", Path: "/x"}}
		}, want: "spec.model.volume must set exactly one of hostPath, persistentVolumeClaim, nfs, csi, image, configMap"},
		"empty input range": {opt: func(mw *fragilev1alpha1.ModelWatermark) {
			mw.Spec.Model.InputRange = fragilev1alpha1.InputRange{Min: "1", Max: "0.5"}
		},
			want: "inputRange.min must be less than inputRange.max"},
		"non-decimal bound": {opt: func(mw *fragilev1alpha1.ModelWatermark) { mw.Spec.Model.InputRange.Max = "1e3" },
			want: "spec.model.inputRange.max: Invalid value: \"1e3\": must be a decimal number such as 0, 255 or -1.5"},
		"too few triggers": {opt: func(mw *fragilev1alpha1.ModelWatermark) { mw.Spec.Triggers = 5 },
			want: "spec.triggers: Invalid value: 5: spec.triggers in body should be greater than or equal to 10"},
		"period too short": {opt: func(mw *fragilev1alpha1.ModelWatermark) { mw.Spec.Verification.PeriodSeconds = 30 },
			want: "spec.verification.periodSeconds in body should be greater than or equal to 60"},
		"malformed pin": {opt: withPin("ABC"),
			want: "spec.model.sha256: Invalid value: \"ABC\": sha256 must be 64 lowercase hex digits"},
		"name too long": {name: strings.Repeat("m", 41),
			want: "metadata.name must be at most 40 characters"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			objName := "bad"
			if tc.name != "" {
				objName = tc.name
			}
			opts := []mwOption{inNamespace(ns)}
			if tc.opt != nil {
				opts = append(opts, tc.opt)
			}
			mw := newMW(objName, opts...)
			mw.ResourceVersion = ""
			err := s.admin.Create(context.Background(), mw)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("create: %v, want Invalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\ndoes not contain %q", err, tc.want)
			}
		})
	}
}

// TestEnvtestSpecChangeRetrains: a new trigger count replaces the watermark (new training Job,
// old Jobs deleted); a new period does not.
func TestEnvtestSpecChangeRetrains(t *testing.T) {
	s := envtestSuite(t)
	ns := s.namespace(t)
	s.create(t, newMW("mnist", inNamespace(ns)))
	s.train(t, ns, "mnist", trainedOK(100))
	s.finish(t, s.waitJob(t, ns, "mnist", componentVerification, running), verifiedIntact(100))
	s.waitCond(t, ns, "mnist", fragilev1alpha1.ConditionReady, "True", fragilev1alpha1.ReasonReady)
	first := s.waitJob(t, ns, "mnist", componentTraining, nil).Name

	s.update(t, ns, "mnist", func(mw *fragilev1alpha1.ModelWatermark) { mw.Spec.Verification.PeriodSeconds = 3600 })
	eventually(t, "observedGeneration 2", func() (bool, string) {
		st := s.mw(t, ns, "mnist").Status
		return st.ObservedGeneration == 2, fmt.Sprint(st.ObservedGeneration)
	})
	if jobs := s.jobs(t, ns, "mnist", componentTraining); len(jobs) != 1 || jobs[0].Name != first {
		t.Fatalf("a period change retrained: training Jobs %v", jobNames(jobs))
	}
	s.waitCond(t, ns, "mnist", fragilev1alpha1.ConditionReady, "True", fragilev1alpha1.ReasonReady)

	s.update(t, ns, "mnist", func(mw *fragilev1alpha1.ModelWatermark) { mw.Spec.Triggers = 200 })
	retrain := s.waitJob(t, ns, "mnist", componentTraining, func(j *batchv1.Job) bool { return j.Name != first })
	if !slices.Contains(retrain.Spec.Template.Spec.Containers[0].Command, "200") {
		t.Errorf("new training Job does not ask for 200 triggers: %v", retrain.Spec.Template.Spec.Containers[0].Command)
	}
	eventually(t, "the superseded Jobs to be deleted", func() (bool, string) {
		var names []string
		for _, j := range append(s.jobs(t, ns, "mnist", componentTraining), s.jobs(t, ns, "mnist", componentVerification)...) {
			if j.DeletionTimestamp.IsZero() {
				names = append(names, j.Name)
			}
		}
		return len(names) == 1 && names[0] == retrain.Name, fmt.Sprint(names)
	})
	s.waitCond(t, ns, "mnist", fragilev1alpha1.ConditionWatermarked, "Unknown", fragilev1alpha1.ReasonTrainingInProgress)
	s.waitCond(t, ns, "mnist", fragilev1alpha1.ConditionIntact, "Unknown", fragilev1alpha1.ReasonAwaitingWatermark)
}

// TestEnvtestPeriodElapsed: with the injected clock, no new verification starts before the
// period and one starts when it has elapsed.
func TestEnvtestPeriodElapsed(t *testing.T) {
	s := envtestSuite(t)
	ns := s.namespace(t)
	s.create(t, newMW("mnist", inNamespace(ns)))
	s.train(t, ns, "mnist", trainedOK(100))
	s.finish(t, s.waitJob(t, ns, "mnist", componentVerification, running), verifiedIntact(100))
	s.waitCond(t, ns, "mnist", fragilev1alpha1.ConditionIntact, "True", fragilev1alpha1.ReasonIntact)
	next := s.mw(t, ns, "mnist").Status.NextVerificationTime

	s.clock.Step(599 * time.Second)
	s.poke(t, ns, "mnist")
	time.Sleep(500 * time.Millisecond)
	if jobs := s.jobs(t, ns, "mnist", componentVerification); len(jobs) != 1 {
		t.Fatalf("a verification started before the period elapsed: %v", jobNames(jobs))
	}

	s.clock.Step(time.Second)
	s.poke(t, ns, "mnist")
	job := s.waitJob(t, ns, "mnist", componentVerification, running)
	if want := verificationJobName(s.mw(t, ns, "mnist"), next.Time); job.Name != want {
		t.Errorf("verification Job %s, want %s (named by its schedule slot)", job.Name, want)
	}
}

// TestEnvtestSampleIsValid: the shipped sample passes the API server's validation.
func TestEnvtestSampleIsValid(t *testing.T) {
	s := envtestSuite(t)
	ns := s.namespace(t)
	mw := loadSample(t, "fragile_v1alpha1_modelwatermark.yaml")
	mw.Namespace = ns
	if err := s.admin.Create(context.Background(), mw); err != nil {
		t.Fatalf("the sample is rejected: %v", err)
	}
	s.waitJob(t, ns, mw.Name, componentTraining, nil)
}

// --- helpers -----------------------------------------------------------------------------

func inNamespace(ns string) mwOption {
	return func(mw *fragilev1alpha1.ModelWatermark) { mw.Namespace = ns }
}

func running(j *batchv1.Job) bool { finished, _, _, _ := jobFinished(j); return !finished }

func (s *envSuite) create(t *testing.T, mw *fragilev1alpha1.ModelWatermark) *fragilev1alpha1.ModelWatermark {
	t.Helper()
	mw.Generation = 0
	if err := s.admin.Create(context.Background(), mw); err != nil {
		t.Fatal(err)
	}
	return mw
}

func (s *envSuite) get(t *testing.T, ns, name string, obj client.Object) {
	t.Helper()
	eventually(t, fmt.Sprintf("%T %s", obj, name), func() (bool, string) {
		err := s.admin.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, obj)
		return err == nil, fmt.Sprint(err)
	})
}

func (s *envSuite) mw(t *testing.T, ns, name string) *fragilev1alpha1.ModelWatermark {
	t.Helper()
	var mw fragilev1alpha1.ModelWatermark
	if err := s.admin.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &mw); err != nil {
		t.Fatal(err)
	}
	return &mw
}

func (s *envSuite) update(t *testing.T, ns, name string, edit func(*fragilev1alpha1.ModelWatermark)) {
	t.Helper()
	eventually(t, "updating "+name, func() (bool, string) {
		mw := s.mw(t, ns, name)
		edit(mw)
		err := s.admin.Update(context.Background(), mw)
		return err == nil, fmt.Sprint(err)
	})
}

// poke changes an annotation so the controller reconciles now: in these tests the fake clock
// moves, but the RequeueAfter timer runs on real time.
func (s *envSuite) poke(t *testing.T, ns, name string) {
	t.Helper()
	s.update(t, ns, name, func(mw *fragilev1alpha1.ModelWatermark) {
		if mw.Annotations == nil {
			mw.Annotations = map[string]string{}
		}
		mw.Annotations["test.fragile.dev/poke"] = s.clock.Now().Format(time.RFC3339Nano)
	})
}

func (s *envSuite) assertOwned(t *testing.T, mw *fragilev1alpha1.ModelWatermark, obj client.Object) {
	t.Helper()
	owner := metav1.GetControllerOf(obj)
	if owner == nil || owner.Kind != "ModelWatermark" || owner.Name != mw.Name || owner.UID != mw.UID ||
		owner.BlockOwnerDeletion == nil || !*owner.BlockOwnerDeletion {
		t.Errorf("%T %s: controller reference %+v, want ModelWatermark %s (%s)", obj, obj.GetName(), owner, mw.Name, mw.UID)
	}
}

func (s *envSuite) jobs(t *testing.T, ns, name, component string) []batchv1.Job {
	t.Helper()
	var list batchv1.JobList
	if err := s.admin.List(context.Background(), &list, client.InNamespace(ns),
		client.MatchingLabels{fragilev1alpha1.LabelModelWatermark: name, labelComponent: component}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// waitJob waits for a Job of the given component that satisfies match (any, when nil).
func (s *envSuite) waitJob(t *testing.T, ns, name, component string, match func(*batchv1.Job) bool) *batchv1.Job {
	t.Helper()
	var found *batchv1.Job
	eventually(t, fmt.Sprintf("a %s Job of %s", component, name), func() (bool, string) {
		jobs := s.jobs(t, ns, name, component)
		for i := range jobs {
			if jobs[i].DeletionTimestamp.IsZero() && (match == nil || match(&jobs[i])) {
				found = &jobs[i]
				return true, ""
			}
		}
		return false, fmt.Sprint(jobNames(jobs))
	})
	return found
}

// finish plays the Job controller and kubelet: the Pod terminates with the report as its
// termination message, and the Job turns Complete or Failed.
func (s *envSuite) finish(t *testing.T, job *batchv1.Job, rep report) {
	t.Helper()
	ctx := context.Background()
	pod := finishJobObjects(job, s.clock.Now(), rep)
	status := pod.Status
	if err := s.admin.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status = status
	if err := s.admin.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if err := s.admin.Status().Update(ctx, job); err != nil {
		t.Fatal(err)
	}
}

// train plays the training Job: it writes the bundle into the reserved Secret and terminates
// with the report.
func (s *envSuite) train(t *testing.T, ns, name string, rep report) {
	t.Helper()
	job := s.waitJob(t, ns, name, componentTraining, running)
	if rep.exitCode == 0 {
		eventually(t, "sealing the bundle", func() (bool, string) {
			var secret corev1.Secret
			if err := s.admin.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name + "-bundle"}, &secret); err != nil {
				return false, err.Error()
			}
			secret.Annotations[contract.AnnotationBundleDigest] = "sha256:b0b0"
			secret.Data = map[string][]byte{contract.BundleDataKey: []byte("sealed")}
			err := s.admin.Update(context.Background(), &secret)
			return err == nil, fmt.Sprint(err)
		})
	}
	s.finish(t, job, rep)
}

func (s *envSuite) waitCond(t *testing.T, ns, name, condType, status, reason string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s=%s (%s)", condType, status, reason), func() (bool, string) {
		c := findCond(s.mw(t, ns, name).Status.Conditions, condType)
		return string(c.Status) == status && c.Reason == reason, fmt.Sprintf("%s/%s: %s", c.Status, c.Reason, c.Message)
	})
}

func (s *envSuite) events(t *testing.T, ns, name string) []eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := s.admin.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "ModelWatermark" && e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out
}

func (s *envSuite) waitEvent(t *testing.T, ns, name, eventType, reason string) {
	t.Helper()
	eventually(t, fmt.Sprintf("a %s %s event", eventType, reason), func() (bool, string) {
		var seen []string
		for _, e := range s.events(t, ns, name) {
			if e.Type == eventType && e.Reason == reason {
				return true, ""
			}
			seen = append(seen, e.Type+" "+e.Reason)
		}
		return false, fmt.Sprint(seen)
	})
}

// describe runs the kubectl built next to the API server.
func (s *envSuite) describe(t *testing.T, ns, name string) string {
	t.Helper()
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		if kubectl, err = exec.LookPath("kubectl"); err != nil {
			t.Skip("no kubectl next to the API server or on PATH")
		}
	}
	out, err := exec.Command(kubectl, "--kubeconfig", s.kubeconfig, "describe", "modelwatermark", "-n", ns, name).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl describe: %v\n%s", err, out)
	}
	return string(out)
}

// TestEnvtestTrainingFailsTwiceThenSucceeds: two failed attempts are retried after their
// backoff (30 s, then 60 s, on the injected clock), each as a new Job; the third succeeds and
// the resource ends Watermarked=True; each failed attempt left a Warning event naming it.
func TestEnvtestTrainingFailsTwiceThenSucceeds(t *testing.T) {
	s := envtestSuite(t)
	ns := s.namespace(t)
	mw := s.create(t, newMW("mnist", inNamespace(ns)))
	hash := watermarkHash(mw)

	for _, step := range []struct {
		attempt int32
		backoff time.Duration
	}{{1, 30 * time.Second}, {2, 60 * time.Second}} {
		job := s.waitJob(t, ns, "mnist", componentTraining, running)
		if job.Name != trainingJobName(mw, hash, step.attempt) {
			t.Fatalf("running training Job %s, want attempt %d", job.Name, step.attempt)
		}
		s.train(t, ns, "mnist", trainedFailed("model URL answered 503 Service Unavailable"))
		s.waitCond(t, ns, "mnist", fragilev1alpha1.ConditionWatermarked, "Unknown", fragilev1alpha1.ReasonTrainingBackoff)
		s.clock.Step(step.backoff)
		s.poke(t, ns, "mnist")
	}
	s.train(t, ns, "mnist", trainedOK(100))
	s.waitCond(t, ns, "mnist", fragilev1alpha1.ConditionWatermarked, "True", fragilev1alpha1.ReasonWatermarked)
	if st := s.mw(t, ns, "mnist").Status.Training; st.Attempt != 3 || st.JobName != trainingJobName(mw, hash, 3) {
		t.Errorf("status.training %+v, want attempt 3", st)
	}
	if jobs := s.jobs(t, ns, "mnist", componentTraining); len(jobs) != 3 {
		t.Errorf("training Jobs %v, want one per attempt", jobNames(jobs))
	}
	eventually(t, "a Warning TrainingBackoff event per failed attempt", func() (bool, string) {
		var notes []string
		found := map[string]bool{}
		for _, e := range s.events(t, ns, "mnist") {
			notes = append(notes, e.Reason+": "+e.Note)
			for _, a := range []string{"attempt 1 of 3", "attempt 2 of 3"} {
				if e.Type == corev1.EventTypeWarning && e.Reason == fragilev1alpha1.ReasonTrainingBackoff && strings.Contains(e.Note, a) {
					found[a] = true
				}
			}
		}
		return len(found) == 2, strings.Join(notes, "\n")
	})
}
