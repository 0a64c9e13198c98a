package main

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/fragile-operator/fragile-operator/pkg/contract"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
)

func reservedSecret(hash string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Name: "mnist-bundle", Namespace: "models",
		Annotations: map[string]string{contract.AnnotationWatermarkHash: hash},
	}}
}

func TestStoreBundle(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(reservedSecret("abc"))
	secrets := cs.CoreV1().Secrets("models")

	if err := storeBundle(ctx, secrets, "mnist-bundle", "abc", []byte("sealed bundle")); err != nil {
		t.Fatal(err)
	}
	s, err := secrets.Get(ctx, "mnist-bundle", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Data["bundle"]) != "sealed bundle" {
		t.Errorf("data %q", s.Data)
	}
	if d := s.Annotations[contract.AnnotationBundleDigest]; !strings.HasPrefix(d, "sha256:") || len(d) != 71 {
		t.Errorf("digest annotation %q", d)
	}
}

func TestStoreBundleRefusesSupersededWatermark(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(reservedSecret("newer"))
	err := storeBundle(ctx, cs.CoreV1().Secrets("models"), "mnist-bundle", "older", []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "superseded") {
		t.Fatalf("err %v, want a refusal naming the superseding run", err)
	}
}

func TestStoreBundleTooLarge(t *testing.T) {
	cs := fake.NewClientset(reservedSecret("abc"))
	err := storeBundle(context.Background(), cs.CoreV1().Secrets("models"), "mnist-bundle", "abc",
		make([]byte, maxBundleSecretBytes+1))
	if err == nil || !strings.Contains(err.Error(), "fewer triggers") {
		t.Fatalf("err %v, want a size error with advice", err)
	}
}

func TestProgressReporterThrottles(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(reservedSecret("abc"))
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	report := progressReporter(ctx, cs.CoreV1().Secrets("models"), "mnist-bundle", func() time.Time { return now })

	patches := func() int {
		n := 0
		for _, a := range cs.Actions() {
			if a.GetVerb() == "patch" {
				n++
			}
		}
		return n
	}
	report(fragile.Progress{Step: 1, MaxSteps: 300, KeyMatch: 0.1})
	report(fragile.Progress{Step: 2, MaxSteps: 300, KeyMatch: 0.2}) // within the interval: dropped
	now = now.Add(progressInterval)
	report(fragile.Progress{Step: 40, MaxSteps: 300, KeyMatch: 0.876})
	if n := patches(); n != 2 {
		t.Errorf("%d patches, want 2", n)
	}
	s, _ := cs.CoreV1().Secrets("models").Get(ctx, "mnist-bundle", metav1.GetOptions{})
	if got := s.Annotations[contract.AnnotationTrainingProgress]; got != "step 40/300, key match 87%" {
		t.Errorf("progress %q", got)
	}
	report(fragile.Progress{Step: 41, MaxSteps: 300, KeyMatch: 1}) // the last step is never dropped
	if n := patches(); n != 3 {
		t.Errorf("%d patches after the final step, want 3", n)
	}
	// The tie refinement that follows: every trigger has its key label, so only the
	// share of tied triggers decides what is final.
	report(fragile.Progress{Phase: fragile.PhaseRefinement, Step: 1, MaxSteps: 20, KeyMatch: 1, Tied: 0.03}) // dropped
	if n := patches(); n != 3 {
		t.Errorf("%d patches after an early refinement iteration, want 3", n)
	}
	report(fragile.Progress{Phase: fragile.PhaseRefinement, Step: 4, MaxSteps: 20, KeyMatch: 1, Tied: 1})
	s, _ = cs.CoreV1().Secrets("models").Get(ctx, "mnist-bundle", metav1.GetOptions{})
	if got := s.Annotations[contract.AnnotationTrainingProgress]; got != "tie refinement 4/20, 100% of triggers tied" {
		t.Errorf("progress %q after the refinement", got)
	}
}
