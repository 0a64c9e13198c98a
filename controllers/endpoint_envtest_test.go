package controllers

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
	"github.com/fragile-operator/fragile-operator/internal/oiptest"
	"github.com/fragile-operator/fragile-operator/pkg/contract"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/endpoint"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/serve"
)

// kserveVersion is the KServe release whose published InferenceService CRD the suite installs,
// taken from its Go module (github.com/kserve/kserve) through the Go module proxy.
const kserveVersion = "v0.16.0"

// TestEnvtestEndpoint is issue 13's envtest acceptance: a ModelWatermark whose spec.endpoint
// points at `fragile serve` on loopback becomes Intact=True; after the server swaps in a
// fine-tuned copy, the next verification makes it Intact=False (TamperDetected). The Job
// controller and kubelet are played by the test, which runs the verification Job's command
// line through pkg/fragile/endpoint against the real server.
func TestEnvtestEndpoint(t *testing.T) {
	s := envtestSuite(t)
	ns := s.namespace(t)
	w, server, url, path := liveModel(t)
	s.keyed(t, ns, "convnet-key", w)

	s.create(t, fixtureMW("live", ns, w, fragilev1alpha1.EndpointSource{URL: url, ModelName: "convnet"}))
	s.trainWith(t, ns, "live", w)
	s.waitCond(t, ns, "live", fragilev1alpha1.ConditionWatermarked, "True", fragilev1alpha1.ReasonWatermarked)

	rep := s.verifyLive(t, ns, "live", w.Key)
	if rep.Result != fragile.ResultIntact {
		t.Fatalf("the served watermarked model: %+v", rep)
	}
	s.waitCond(t, ns, "live", fragilev1alpha1.ConditionIntact, "True", fragilev1alpha1.ReasonIntact)
	s.waitCond(t, ns, "live", fragilev1alpha1.ConditionReady, "True", fragilev1alpha1.ReasonReady)
	if u := s.mw(t, ns, "live").Status.EndpointURL; u != url {
		t.Errorf("status.endpointURL %q, want %q", u, url)
	}

	// The server swaps models while it runs.
	if err := os.WriteFile(path, w.FineTuned, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := server.Reload(); err != nil {
		t.Fatal(err)
	}
	s.clock.Step(600 * time.Second)
	s.poke(t, ns, "live")
	rep = s.verifyLive(t, ns, "live", w.Key)
	if rep.Result != fragile.ResultTampered {
		t.Fatalf("the fine-tuned copy: %+v", rep)
	}
	s.waitCond(t, ns, "live", fragilev1alpha1.ConditionIntact, "False", fragilev1alpha1.ReasonTamperDetected)
	s.waitEvent(t, ns, "live", corev1.EventTypeWarning, fragilev1alpha1.ReasonTamperDetected)
}

// TestEnvtestEndpointInferenceService: with KServe's own CRD installed, an
// inferenceServiceRef waits (Intact=Unknown, EndpointUnresolved) until the InferenceService
// reports an address, then the verification Job asks that address.
func TestEnvtestEndpointInferenceService(t *testing.T) {
	s := envtestSuite(t)
	crd := kserveCRD(t)
	if _, err := envtest.InstallCRDs(s.env.Config, envtest.CRDInstallOptions{Paths: []string{crd}}); err != nil {
		t.Fatalf("installing KServe's InferenceService CRD: %v", err)
	}
	ns := s.namespace(t)
	w, _, url, _ := liveModel(t)
	s.keyed(t, ns, "convnet-key", w)

	ctx := context.Background()
	isvc := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{"predictor": map[string]any{"model": map[string]any{
			"modelFormat": map[string]any{"name": "onnx"}, "protocolVersion": "v2", "storageUri": "pvc://models/convnet",
		}}},
	}}
	isvc.SetGroupVersionKind(inferenceServiceGVK)
	isvc.SetNamespace(ns)
	isvc.SetName("convnet")
	if err := s.admin.Create(ctx, isvc); err != nil {
		t.Fatalf("creating an InferenceService: %v", err)
	}
	s.create(t, fixtureMW("isvc", ns, w, fragilev1alpha1.EndpointSource{InferenceServiceRef: &fragilev1alpha1.LocalObjectReference{Name: "convnet"}}))
	s.trainWith(t, ns, "isvc", w)
	s.waitCond(t, ns, "isvc", fragilev1alpha1.ConditionIntact, "Unknown", fragilev1alpha1.ReasonEndpointUnresolved)
	if jobs := s.jobs(t, ns, "isvc", componentVerification); len(jobs) != 0 {
		t.Fatalf("verification started before the InferenceService had an address: %v", jobNames(jobs))
	}

	// KServe's controller would now report the predictor's address.
	eventually(t, "the InferenceService status", func() (bool, string) {
		if err := s.admin.Get(ctx, objectKey(ns, "convnet"), isvc); err != nil {
			return false, err.Error()
		}
		_ = unstructured.SetNestedField(isvc.Object, url, "status", "address", "url")
		_ = unstructured.SetNestedField(isvc.Object, "http://convnet.example.com", "status", "url")
		err := s.admin.Status().Update(ctx, isvc)
		return err == nil, errString(err)
	})
	s.poke(t, ns, "isvc")
	job := s.waitJob(t, ns, "isvc", componentVerification, running)
	if args := jobArgs(job); args["--endpoint"] != url || args["--model-name"] != "convnet" {
		t.Errorf("verification Job asks %q for model %q; want the InferenceService's address %q and its name", args["--endpoint"], args["--model-name"], url)
	}
	if rep := s.verifyLive(t, ns, "isvc", w.Key); rep.Result != fragile.ResultIntact {
		t.Fatalf("through the InferenceService's address: %+v", rep)
	}
	s.waitCond(t, ns, "isvc", fragilev1alpha1.ConditionIntact, "True", fragilev1alpha1.ReasonIntact)
	if u := s.mw(t, ns, "isvc").Status.EndpointURL; u != url {
		t.Errorf("status.endpointURL %q, want %q", u, url)
	}
}

// liveModel serves the fixture's watermarked model with `fragile serve`'s handler on loopback.
func liveModel(t *testing.T) (*oiptest.Watermarked, *serve.Server, string, string) {
	t.Helper()
	s := oiptest.Serve(t, nil)
	return s.Watermarked, s.Server, s.URL, s.Path
}

// fixtureMW watermarks the fixture's model (its key in Secret convnet-key, see keyed) and
// verifies it at ep.
func fixtureMW(name, ns string, w *oiptest.Watermarked, ep fragilev1alpha1.EndpointSource) *fragilev1alpha1.ModelWatermark {
	return newMW(name, inNamespace(ns), withKeyRef("convnet-key"), withEndpoint(ep), func(mw *fragilev1alpha1.ModelWatermark) {
		mw.Spec.Triggers = int32(w.Bundle.Len())
		mw.Spec.Model.InputRange = fragilev1alpha1.InputRange{Min: "0", Max: "1"}
	})
}

// keyed creates the key Secret spec.keySecretRef points at, holding the fixture's key.
func (s *envSuite) keyed(t *testing.T, ns, name string, w *oiptest.Watermarked) {
	t.Helper()
	text, err := w.Key.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: map[string][]byte{"key": text}}
	if err := s.admin.Create(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
}

// trainWith plays the training Job with the fixture's sealed bundle.
func (s *envSuite) trainWith(t *testing.T, ns, name string, w *oiptest.Watermarked) {
	t.Helper()
	job := s.waitJob(t, ns, name, componentTraining, running)
	eventually(t, "sealing the bundle", func() (bool, string) {
		var secret corev1.Secret
		if err := s.admin.Get(context.Background(), objectKey(ns, name+"-bundle"), &secret); err != nil {
			return false, err.Error()
		}
		secret.Annotations[contract.AnnotationBundleDigest] = "sha256:sealed"
		secret.Data = map[string][]byte{contract.BundleDataKey: w.Sealed}
		err := s.admin.Update(context.Background(), &secret)
		return err == nil, errString(err)
	})
	s.finish(t, job, jsonReport(fragile.WatermarkReport{
		Result: fragile.WatermarkSucceeded, Method: string(w.Bundle.Method), Triggers: w.Bundle.Len(), KeyMatch: 1,
		Steps: w.Bundle.Steps, ModelDigest: w.Bundle.DigestString(), KeyID: w.Key.ID(), BundleBytes: len(w.Sealed),
	}, 0))
}

// verifyLive plays the running verification Job: it reads the Job's own command line, opens
// the bundle from its Secret, verifies the endpoint the command names, and terminates with the
// report and the exit status `fragile verify` would use.
func (s *envSuite) verifyLive(t *testing.T, ns, name string, key fragile.Key) fragile.VerifyReport {
	t.Helper()
	job := s.waitJob(t, ns, name, componentVerification, running)
	args := jobArgs(job)
	timeout, err := time.ParseDuration(args["--timeout"])
	if err != nil {
		t.Fatalf("verification Job %s: --timeout %q: %v", job.Name, args["--timeout"], err)
	}
	var secret corev1.Secret
	s.get(t, ns, name+"-bundle", &secret)
	b, err := fragile.Open(secret.Data[contract.BundleDataKey], key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := endpoint.New(endpoint.Config{URL: args["--endpoint"], Model: args["--model-name"], Version: args["--model-version"], Timeout: timeout}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep := endpoint.Verify(context.Background(), c, b, endpoint.VerifyOptions{})
	msg, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	s.finish(t, job, report{message: string(msg), exitCode: int32(rep.Result.ExitCode())})
	return rep
}

// jobArgs maps each flag of a Job's `fragile verify` command to its value.
func jobArgs(job *batchv1.Job) map[string]string {
	cmd := job.Spec.Template.Spec.Containers[0].Command
	args := map[string]string{}
	for i := 0; i+1 < len(cmd); i++ {
		if strings.HasPrefix(cmd[i], "--") && !strings.HasPrefix(cmd[i+1], "--") {
			args[cmd[i]] = cmd[i+1]
		}
	}
	if !slices.Contains(cmd, "--endpoint") {
		args["--endpoint"] = ""
	}
	return args
}

// kserveCRD locates KServe's published InferenceService CRD in its Go module, downloading
// the module through the Go module proxy when the module cache lacks it.
func kserveCRD(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/kserve/kserve@"+kserveVersion).Output()
	var info struct{ Dir, Error string }
	if err == nil {
		err = json.Unmarshal(out, &info)
	}
	if err != nil || info.Dir == "" {
		t.Fatalf("go mod download github.com/kserve/kserve@%s: %v %s", kserveVersion, err, info.Error)
	}
	path := filepath.Join(info.Dir, "config", "crd", "full", "serving.kserve.io_inferenceservices.yaml")
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func objectKey(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestEnvtestEndpointValidation: the endpoint sample is accepted, and the CRD's rules refuse
// an endpoint that names both or neither of url and inferenceServiceRef, a url without a model
// name, and a url carrying credentials.
func TestEnvtestEndpointValidation(t *testing.T) {
	s := envtestSuite(t)
	ns := s.namespace(t)
	sample := loadSample(t, "fragile_v1alpha1_modelwatermark_endpoint.yaml")
	sample.Namespace = ns
	if err := s.admin.Create(context.Background(), sample); err != nil {
		t.Fatalf("the endpoint sample is rejected: %v", err)
	}
	isvc := &fragilev1alpha1.LocalObjectReference{Name: "mnist"}
	tests := map[string]struct {
		ep   fragilev1alpha1.EndpointSource
		says string
	}{
		"url and inferenceServiceRef": {fragilev1alpha1.EndpointSource{URL: "http://mnist:8080", ModelName: "mnist", InferenceServiceRef: isvc}, "exactly one of url and inferenceServiceRef"},
		"neither":                     {fragilev1alpha1.EndpointSource{ModelName: "mnist"}, "exactly one of url and inferenceServiceRef"},
		"url without modelName":       {fragilev1alpha1.EndpointSource{URL: "http://mnist:8080"}, "modelName is required"},
		"credentials in the url":      {fragilev1alpha1.EndpointSource{URL: "http://user:pw@mnist:8080", ModelName: "mnist"}, "without credentials"},
		"not http":                    {fragilev1alpha1.EndpointSource{URL: "grpc://mnist:8081", ModelName: "mnist"}, "http(s)://HOST"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			mw := newMW("bad", inNamespace(ns), withEndpoint(tc.ep))
			mw.Generation = 0
			err := s.admin.Create(context.Background(), mw)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("created: %v; want a rejection saying %q", err, tc.says)
				_ = s.admin.Delete(context.Background(), mw)
			}
		})
	}
}

// loadSample reads a sample ModelWatermark from config/samples, strictly.
func loadSample(t *testing.T, file string) *fragilev1alpha1.ModelWatermark {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "config", "samples", file))
	if err != nil {
		t.Fatal(err)
	}
	var mw fragilev1alpha1.ModelWatermark
	if err := yaml.UnmarshalStrict(raw, &mw); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return &mw
}
