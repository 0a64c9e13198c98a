#!/usr/bin/env bash
# hack/conformance.sh: issue 9's conformance checks, once.
#
#   1. The ONNX backend test suite (Debian libonnx-testdata, installed when
#      missing): every node and pytorch-converted case whose ops nn claims, through
#      the product's path, at rtol 1e-4 / atol 1e-5. It writes the report and fails
#      when it differs from the committed docs/conformance.md (--update writes it
#      there instead: run that after changing an op, and commit the result).
#   2. The PyTorch fixtures (hack/torch/fixtures.sh, exported once into the cache):
#      our logits against PyTorch's and onnxruntime's.
#
# A wrong value, an error that is not a refusal, or a panic fails, on nn or on
# pkg/fragile/infer (each case runs on both: infer is what verification uses
# first); so does a pass rate on nn under 95% of the claimed cases
# (conformance.MinPassPercent), the report still being written for --update.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh
export GOTOOLCHAIN=local

update=0
case "${1:-}" in
  "") ;;
  --update) update=1 ;;
  *) echo "usage: hack/conformance.sh [--update]" >&2; exit 2 ;;
esac

testdata=/usr/share/libonnx-testdata/data
if [[ ! -d "$testdata/node" ]]; then
  apt_install libonnx-testdata
fi
export FRAGILE_ONNX_TESTDATA="$testdata"
FRAGILE_TORCH_DIR="$(hack/torch/fixtures.sh)"
export FRAGILE_TORCH_DIR
FRAGILE_ORT_LIB="${FRAGILE_ORT_LIB:-$(onnxruntime_lib)}"
export FRAGILE_ORT_LIB

report=$(mktemp)
trap 'rm -f "$report"' EXIT
log "ONNX backend test suite and PyTorch fixtures"
status=0
go test -count=1 -timeout 30m ./pkg/fragile/conformance -run '^(TestBackendSuite|TestTorchFixtures)$' -report "$report" || status=$?
if [[ ! -s "$report" ]]; then
  echo "the suite wrote no report" >&2
  exit 1
fi
if [[ $update -eq 1 ]]; then
  # Written even when the suite fails: the report lists the failures.
  cp "$report" docs/conformance.md
  log "wrote docs/conformance.md"
  exit $status
fi
[[ $status -eq 0 ]] || exit $status
if ! diff -u docs/conformance.md "$report"; then
  echo "docs/conformance.md differs from what the suite reports now (above): run 'hack/conformance.sh --update' and commit it" >&2
  exit 1
fi
