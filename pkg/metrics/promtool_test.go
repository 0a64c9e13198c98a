package metrics

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"
)

const (
	rulesFile     = "../../config/prometheus/rules.yaml"
	rulesTestFile = "../../config/prometheus/rules_test.yaml"
)

// readYAML decodes the YAML file path into v.
func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// alertNames lists the alerts of config/prometheus/rules.yaml.
func alertNames(t *testing.T) []string {
	t.Helper()
	var rule struct {
		Spec struct {
			Groups []struct {
				Rules []struct {
					Alert string `json:"alert"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	readYAML(t, rulesFile, &rule)
	var names []string
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				names = append(names, r.Alert)
			}
		}
	}
	return names
}

// TestEveryAlertHasRuleTests: each alert has a promtool case where it fires and one where it
// must not, so a rule edit that silences or inflates an alert fails `promtool test rules`.
func TestEveryAlertHasRuleTests(t *testing.T) {
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []struct {
					ExpAnnotations map[string]string `json:"exp_annotations"`
				} `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	readYAML(t, rulesTestFile, &tests)
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) == 0 {
				silent[a.Alertname] = true
			}
			for _, e := range a.ExpAlerts {
				if e.ExpAnnotations["summary"] != "" && e.ExpAnnotations["description"] != "" {
					fires[a.Alertname] = true
				}
			}
		}
	}
	names := alertNames(t)
	if len(names) == 0 {
		t.Fatal("no alerts in rules.yaml")
	}
	for _, name := range names {
		if !fires[name] || !silent[name] {
			t.Errorf("%s: a firing case with its annotations %v, a silent case %v; want both", name, fires[name], silent[name])
		}
	}
}

// TestPromtool runs `promtool check rules` and `promtool test rules` on the PrometheusRule's
// groups. promtool is built from the Go module proxy by hack/promtool.sh, which sets
// FRAGILE_PROMTOOL.
func TestPromtool(t *testing.T) {
	promtool := os.Getenv("FRAGILE_PROMTOOL")
	if promtool == "" {
		t.Skip("FRAGILE_PROMTOOL is unset: hack/promtool.sh builds promtool and runs this test")
	}
	var rule struct {
		Spec map[string]any `json:"spec"`
	}
	readYAML(t, rulesFile, &rule)
	groups, err := yaml.Marshal(rule.Spec)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.groups.yaml"), groups, 0o644); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules_test.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "rules", "rules.groups.yaml"}, {"test", "rules", "rules_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		t.Logf("promtool %v:\n%s", args, out)
		if err != nil {
			t.Errorf("promtool %v: %v", args, err)
		}
	}
}
