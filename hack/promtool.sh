#!/usr/bin/env bash
# hack/promtool.sh: checks the alert rules of config/prometheus with promtool, built from the Go
# module proxy and cached (~10 min once): `promtool check rules` on the PrometheusRule's groups
# and `promtool test rules` on config/prometheus/rules_test.yaml, a unit test for each alert.
# pkg/metrics's TestPromtool does the work; this script provides the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-v0.316.0}
FRAGILE_PROMTOOL="$(go_tool github.com/prometheus/prometheus/cmd/promtool "$PROMETHEUS_VERSION")"
export FRAGILE_PROMTOOL
"$FRAGILE_PROMTOOL" --version 2>&1 | head -1 >&2
go test -count=1 -run 'TestPromtool' -v ./pkg/metrics/ | grep -E '^(=== RUN|--- |\s+promtool|ok|FAIL|PASS)' >&2
