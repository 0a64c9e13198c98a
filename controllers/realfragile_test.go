package controllers

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
	"github.com/fragile-operator/fragile-operator/internal/onnxtest"
	"github.com/fragile-operator/fragile-operator/pkg/contract"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/attack"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// TestEnvtestWithRealFragile replaces the hand-written reports of the other envtest tests with
// the real ML core: the key is the one the controller generated (read back from its Secret),
// the bundle is sealed by pkg/fragile into the bundle Secret, and every termination message is
// a report pkg/fragile produced by verifying a real (small) ONNX model: untouched, with weight
// noise, and truncated. Only the Job controller and kubelet are still played by the test.
func TestEnvtestWithRealFragile(t *testing.T) {
	s := envtestSuite(t)
	ns := s.namespace(t)
	ctx := context.Background()
	// The small ConvNet and seed pkg/fragile's own tests watermark with 40 triggers.
	model := onnx.Encode(onnxtest.ConvNet(rand.New(rand.NewPCG(61, 62))))

	mw := newMW("mlp", inNamespace(ns), func(mw *fragilev1alpha1.ModelWatermark) {
		mw.Spec.Triggers = 40
		mw.Spec.Model.InputRange = fragilev1alpha1.InputRange{Min: "0", Max: "1"}
	})
	s.create(t, mw)
	trainJob := s.waitJob(t, ns, "mlp", componentTraining, running)

	// The training Job's work, done in-process with the Secret-held key.
	var keySecret corev1.Secret
	s.get(t, ns, "mlp-key", &keySecret)
	var key fragile.Key
	if err := key.UnmarshalText(keySecret.Data["key"]); err != nil {
		t.Fatalf("the generated key is not in the format pkg/fragile reads: %v", err)
	}
	start := time.Now()
	bundle, err := fragile.Watermark(ctx, model, key, fragile.WatermarkOptions{Triggers: 40, InputMin: 0, InputMax: 1})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := fragile.Seal(bundle, key)
	if err != nil {
		t.Fatal(err)
	}
	var bundleSecret corev1.Secret
	s.get(t, ns, "mlp-bundle", &bundleSecret)
	bundleSecret.Data = map[string][]byte{contract.BundleDataKey: sealed}
	bundleSecret.Annotations[contract.AnnotationBundleDigest] = "sha256:sealed"
	if err := s.admin.Update(ctx, &bundleSecret); err != nil {
		t.Fatal(err)
	}
	s.finish(t, trainJob, jsonReport(fragile.WatermarkReport{
		Result: fragile.WatermarkSucceeded, Method: string(bundle.Method), Triggers: bundle.Len(), KeyMatch: 1,
		Steps: bundle.Steps, ModelDigest: bundle.DigestString(), KeyID: key.ID(), BundleBytes: len(sealed),
		DurationSeconds: time.Since(start).Seconds(),
	}, 0))
	s.waitCond(t, ns, "mlp", fragilev1alpha1.ConditionWatermarked, "True", fragilev1alpha1.ReasonWatermarked)

	// verifyAs plays one verification Job: open the bundle from its Secret, verify the given
	// model bytes, terminate with the report and the exit status `fragile verify` would use.
	verifyAs := func(modelBytes []byte) fragile.VerifyReport {
		t.Helper()
		job := s.waitJob(t, ns, "mlp", componentVerification, running)
		var secret corev1.Secret
		s.get(t, ns, "mlp-bundle", &secret)
		b, err := fragile.Open(secret.Data[contract.BundleDataKey], key)
		if err != nil {
			t.Fatal(err)
		}
		rep := fragile.Verify(ctx, modelBytes, b)
		msg, err := json.Marshal(rep)
		if err != nil {
			t.Fatal(err)
		}
		s.finish(t, job, report{message: string(msg), exitCode: int32(rep.Result.ExitCode())})
		return rep
	}
	next := func() {
		t.Helper()
		s.clock.Step(600 * time.Second)
		s.poke(t, ns, "mlp")
	}

	if rep := verifyAs(model); rep.Result != fragile.ResultIntact {
		t.Fatalf("the untouched model verified as %q: %s", rep.Result, rep.Message)
	}
	s.waitCond(t, ns, "mlp", fragilev1alpha1.ConditionReady, "True", fragilev1alpha1.ReasonReady)

	next()
	truncated := model[:len(model)/2]
	if rep := verifyAs(truncated); rep.Result != fragile.ResultError {
		t.Fatalf("a truncated model verified as %q", rep.Result)
	}
	s.waitCond(t, ns, "mlp", fragilev1alpha1.ConditionIntact, "Unknown", fragilev1alpha1.ReasonVerificationFailed)

	next()
	noisy, err := attack.Noise(model, attack.NoiseOptions{Sigma: 0.2, Relative: true}, rand.New(rand.NewPCG(5, 6)))
	if err != nil {
		t.Fatal(err)
	}
	rep := verifyAs(noisy)
	if rep.Result != fragile.ResultTampered {
		t.Fatalf("a model with 20%% weight noise verified as %q", rep.Result)
	}
	s.waitCond(t, ns, "mlp", fragilev1alpha1.ConditionIntact, "False", fragilev1alpha1.ReasonTamperDetected)
	st := s.mw(t, ns, "mlp").Status
	if lv := st.LastVerification; ptr.Deref(lv.MismatchedTriggers, -1) != int32(rep.Mismatched) || ptr.Deref(lv.TotalTriggers, -1) != 40 {
		t.Errorf("lastVerification %+v, report %+v", st.LastVerification, rep)
	}
	if !strings.HasPrefix(st.ModelDigest, "sha256:") || st.ModelDigest == bundle.DigestString() {
		t.Errorf("modelDigest %q should be the noisy model's, not the watermarked one's", st.ModelDigest)
	}
}
