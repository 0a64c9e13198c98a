package controllers

import (
	"os"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
)

func TestPlanVerification(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const period = 10 * time.Minute
	for name, c := range map[string]struct {
		trainedAt, lastSlot time.Time
		running             bool
		now                 time.Time
		start, next         time.Time
	}{
		"first, right after training": {trainedAt: t0, now: t0,
			start: t0, next: t0.Add(period)},
		"first, training ended mid-second": {trainedAt: t0.Add(1500 * time.Millisecond), now: t0.Add(2 * time.Second),
			start: t0.Add(time.Second), next: t0.Add(time.Second + period)},
		"first, training has not been seen to end yet": {trainedAt: t0.Add(time.Second), now: t0,
			next: t0.Add(time.Second)},
		"the previous slot's Job is still running": {trainedAt: t0, lastSlot: t0, running: true, now: t0.Add(period + time.Minute),
			next: t0.Add(period)},
		"before the period has elapsed": {trainedAt: t0, lastSlot: t0, now: t0.Add(period - time.Second),
			next: t0.Add(period)},
		"exactly one period later": {trainedAt: t0, lastSlot: t0, now: t0.Add(period),
			start: t0.Add(period), next: t0.Add(2 * period)},
		"three slots missed: one Job, in the newest passed slot": {trainedAt: t0, lastSlot: t0, now: t0.Add(3*period + time.Minute),
			start: t0.Add(3 * period), next: t0.Add(4 * period)},
		"training time is ignored once a slot was filled": {trainedAt: t0.Add(-time.Hour), lastSlot: t0, now: t0.Add(time.Minute),
			next: t0.Add(period)},
	} {
		t.Run(name, func(t *testing.T) {
			got := planVerification(period, c.trainedAt, c.lastSlot, c.running, c.now)
			if !got.start.Equal(c.start) || !got.next.Equal(c.next) {
				t.Errorf("start %v next %v, want start %v next %v", got.start, got.next, c.start, c.next)
			}
		})
	}
}

func TestVerificationPeriodDefault(t *testing.T) {
	if got := verificationPeriod(fragilev1alpha1.VerificationSpec{PeriodSeconds: 60}); got != time.Minute {
		t.Errorf("60 s: %v", got)
	}
	want := time.Duration(fragilev1alpha1.DefaultVerificationPeriodSeconds) * time.Second
	if got := verificationPeriod(fragilev1alpha1.VerificationSpec{}); got != want {
		t.Errorf("unset: %v, want %v", got, want)
	}
}

// TestCRDDefaultPeriodIsTheConstant: the CRD's default marker cannot name the Go constant, so
// the generated CRD is compared with it.
func TestCRDDefaultPeriodIsTheConstant(t *testing.T) {
	data, err := os.ReadFile("../config/crd/bases/fragile.dev_modelwatermarks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	period := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.
		Properties["spec"].Properties["verification"].Properties["periodSeconds"]
	if period.Default == nil || string(period.Default.Raw) != "600" || fragilev1alpha1.DefaultVerificationPeriodSeconds != 600 {
		t.Fatalf("CRD default %v, constant %d: the marker and DefaultVerificationPeriodSeconds must agree",
			period.Default, fragilev1alpha1.DefaultVerificationPeriodSeconds)
	}
}
