package metrics

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"
)

// TestAlertRules checks config/prometheus/rules.yaml against the series this package exports:
// every alert has a duration, a severity, a summary, a description and a runbook, and every
// fragile_* series it names exists here (a renamed metric must not silence an alert).
func TestAlertRules(t *testing.T) {
	raw, err := os.ReadFile("../../config/prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rule struct {
		Spec struct {
			Groups []struct {
				Rules []struct {
					Alert       string            `json:"alert"`
					Expr        string            `json:"expr"`
					For         string            `json:"for"`
					Labels      map[string]string `json:"labels"`
					Annotations map[string]string `json:"annotations"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &rule); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(IntactStatus, LastSuccessfulVerification, VerificationPeriod, MismatchedTriggers, ReconcileErrors)
	Report("ns", "probe", Observation{IntactStatus: "True", PeriodSeconds: 60, HasVerdict: true})
	ReconcileError("ns", "probe")
	defer Forget("ns", "probe")
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		exported[f.GetName()] = true
	}

	series := regexp.MustCompile(`fragile_[a-z_]+`)
	alerts := 0
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			alerts++
			if r.For == "" {
				t.Errorf("%s has no for:", r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s has severity %q", r.Alert, s)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s has no %s", r.Alert, a)
				}
			}
			if !strings.HasSuffix(r.Annotations["runbook_url"], "#"+strings.ToLower(r.Alert)) {
				t.Errorf("%s: runbook_url %q does not point at its section", r.Alert, r.Annotations["runbook_url"])
			}
			names := series.FindAllString(r.Expr+r.Annotations["description"], -1)
			if len(names) == 0 {
				t.Errorf("%s uses none of the operator's series", r.Alert)
			}
			for _, name := range names {
				if !exported[name] {
					t.Errorf("%s refers to %s, which the operator does not export", r.Alert, name)
				}
			}
		}
	}
	if alerts < 3 {
		t.Errorf("%d alerts; want at least tampering, stale verification and reconcile errors", alerts)
	}
}
