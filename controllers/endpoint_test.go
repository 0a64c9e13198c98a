package controllers

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
)

func withEndpoint(ep fragilev1alpha1.EndpointSource) mwOption {
	return func(mw *fragilev1alpha1.ModelWatermark) { mw.Spec.Endpoint = &ep }
}

func verifiedLive(total, mismatched int, endpoint string) report {
	result, code := fragile.ResultIntact, 0
	if mismatched > 0 {
		result, code = fragile.ResultTampered, 1
	}
	return jsonReport(fragile.VerifyReport{Result: result, Total: total, Mismatched: mismatched,
		Endpoint: endpoint, Requests: 12, DurationSeconds: 1}, code)
}

// TestEndpointVerificationJob: with spec.endpoint, the verification Job asks the endpoint
// (credentials and CA mounted from their objects) and mounts no model; training still reads
// the artifact; an intact live verdict makes the resource Ready even with a digest pin,
// since an endpoint has no bytes to compare.
func TestEndpointVerificationJob(t *testing.T) {
	mw := newMW("mnist", withPin(pinnedHex), withEndpoint(fragilev1alpha1.EndpointSource{
		URL: "https://mnist.models.svc:8443/serving", ModelName: "mnist", ModelVersion: "3",
		AuthSecretRef:         &fragilev1alpha1.LocalObjectReference{Name: "mnist-api"},
		CAConfigMapRef:        &fragilev1alpha1.ConfigMapKeyReference{Name: "mnist-ca", Key: "bundle.pem"},
		RequestTimeoutSeconds: 7,
	}))
	h := newHarness(t, mw)
	h.train("mnist", trainedOK(100))
	if got := h.onlyJob("mnist", componentTraining).Spec.Template.Spec.Containers[0].Command; !strings.Contains(strings.Join(got, " "), "--model /mnt/models/mnist-7/model.onnx") {
		t.Errorf("training command %v should read the artifact", got)
	}
	job := h.onlyJob("mnist", componentVerification)
	pod := job.Spec.Template.Spec
	want := []string{"fragile", "verify", "--endpoint", "https://mnist.models.svc:8443/serving", "--model-name", "mnist",
		"--model-version", "3", "--timeout", "7s", "--auth-dir", endpointAuthDir, "--ca-file", endpointCADir + "/ca.crt",
		"--bundle", "/var/run/fragile/bundle/bundle", "--bundle-digest", "sha256:b0b0",
		"--key", "/var/run/fragile/key/key", "--json", "--report", "/dev/termination-log"}
	if d := cmp.Diff(want, pod.Containers[0].Command); d != "" {
		t.Errorf("verification command (-want +got):\n%s", d)
	}
	volumes := map[string]bool{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = true
		switch v.Name {
		case "endpoint-auth":
			if v.Secret == nil || v.Secret.SecretName != "mnist-api" {
				t.Errorf("auth volume %+v", v)
			}
		case "endpoint-ca":
			if v.ConfigMap == nil || v.ConfigMap.Name != "mnist-ca" || v.ConfigMap.Items[0].Key != "bundle.pem" {
				t.Errorf("CA volume %+v", v)
			}
		}
	}
	if volumes[modelVolumeName] || !volumes["endpoint-auth"] || !volumes["endpoint-ca"] {
		t.Errorf("volumes %v: want the endpoint's credentials and no model", volumes)
	}

	h.verify("mnist", verifiedLive(100, 0, "https://mnist.models.svc:8443/serving/v2/models/mnist/versions/3"))
	st := h.mw("mnist").Status
	if d := cmp.Diff(wantConds("True/Watermarked", "True/Intact", "True/Ready"), conds(st.Conditions)); d != "" {
		t.Errorf("conditions (-want +got):\n%s", d)
	}
	intact := meta.FindStatusCondition(st.Conditions, fragilev1alpha1.ConditionIntact)
	if !strings.Contains(intact.Message, "answered live by https://mnist.models.svc:8443/serving/v2/models/mnist/versions/3") {
		t.Errorf("Intact message %q", intact.Message)
	}
	if st.EndpointURL != "https://mnist.models.svc:8443/serving" {
		t.Errorf("status.endpointURL %q", st.EndpointURL)
	}

	h.clock.SetTime(t0.Add(time.Hour))
	h.reconcile("mnist")
	h.verify("mnist", verifiedLive(100, 4, "https://mnist.models.svc:8443/serving/v2/models/mnist/versions/3"))
	if c := meta.FindStatusCondition(h.mw("mnist").Status.Conditions, fragilev1alpha1.ConditionIntact); c.Reason != fragilev1alpha1.ReasonTamperDetected {
		t.Errorf("a live verdict of 4 changed labels: Intact %s %s", c.Status, c.Reason)
	}
}

// TestEndpointInferenceService: the URL comes from the InferenceService's status; while it
// cannot be resolved no verification starts and Intact says why.
func TestEndpointInferenceService(t *testing.T) {
	mw := newMW("mnist", withEndpoint(fragilev1alpha1.EndpointSource{
		InferenceServiceRef: &fragilev1alpha1.LocalObjectReference{Name: "mnist-isvc"},
	}))
	h := newHarness(t, mw)
	h.train("mnist", trainedOK(100))
	if jobs := h.jobs("mnist", componentVerification); len(jobs) != 0 {
		t.Fatalf("a verification Job %v started without an endpoint", jobNames(jobs))
	}
	st := h.mw("mnist").Status
	intact := meta.FindStatusCondition(st.Conditions, fragilev1alpha1.ConditionIntact)
	if intact.Status != condUnknown || intact.Reason != fragilev1alpha1.ReasonEndpointUnresolved || !strings.Contains(intact.Message, "mnist-isvc") {
		t.Errorf("Intact %s %s %q", intact.Status, intact.Reason, intact.Message)
	}
	if res := h.reconcile("mnist"); res.RequeueAfter != endpointRetry {
		t.Errorf("requeue after %v, want %v", res.RequeueAfter, endpointRetry)
	}

	isvc := &unstructured.Unstructured{}
	isvc.SetGroupVersionKind(inferenceServiceGVK)
	isvc.SetNamespace(testNamespace)
	isvc.SetName("mnist-isvc")
	if err := h.c.Create(h.ctx, isvc); err != nil {
		t.Fatal(err)
	}
	h.reconcile("mnist")
	if c := meta.FindStatusCondition(h.mw("mnist").Status.Conditions, fragilev1alpha1.ConditionIntact); !strings.Contains(c.Message, "no URL in its status") {
		t.Errorf("an InferenceService without a URL: %q", c.Message)
	}

	_ = unstructured.SetNestedField(isvc.Object, "http://mnist-isvc.models.svc.cluster.local", "status", "address", "url")
	_ = unstructured.SetNestedField(isvc.Object, "https://mnist-isvc.models.example.com", "status", "url")
	if err := h.c.Update(h.ctx, isvc); err != nil {
		t.Fatal(err)
	}
	h.reconcile("mnist")
	cmd := h.onlyJob("mnist", componentVerification).Spec.Template.Spec.Containers[0].Command
	if got := strings.Join(cmd, " "); !strings.Contains(got, "--endpoint http://mnist-isvc.models.svc.cluster.local --model-name mnist-isvc --timeout 10s --bundle") {
		t.Errorf("verification command %q: want the cluster-internal address and the InferenceService's name as model", got)
	}
	if u := h.mw("mnist").Status.EndpointURL; u != "http://mnist-isvc.models.svc.cluster.local" {
		t.Errorf("status.endpointURL %q", u)
	}
}
