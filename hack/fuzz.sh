#!/usr/bin/env bash
# Smoke-fuzz every Go fuzz target for a fixed short time each, as CI does.
#
#   hack/fuzz.sh                  # every Fuzz* in ./pkg/... ./internal/..., 10s each
#   FUZZTIME=1m hack/fuzz.sh ./pkg/fragile/onnx
#
# Targets are discovered with `go test -list`, so new ones are fuzzed without editing
# this script. A failure leaves the input under the package's testdata/fuzz/ and
# fails the script; commit that file with the fix so it stays a regression test.
#
# -fuzzminimizetime is kept short: go minimises every new interesting input, which for
# the 26 kB mnist-7 seed takes up to the default minute with no executions counted,
# and would eat a short run whole.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime="${FUZZTIME:-10s}"
if [ "$#" -eq 0 ]; then
	set -- ./pkg/... ./internal/...
fi

status=0
for pkg in $(go list "$@"); do
	targets=$(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true)
	for target in $targets; do
		echo "== fuzz $pkg $target for $fuzztime"
		if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 2s "$pkg"; then
			status=1
		fi
	done
done
exit "$status"
