#!/usr/bin/env bash
# hack/staticcheck.sh: staticcheck (honnef.co/go/tools) on every package, built from the Go module
# proxy into the cache the first time (a few minutes once). The ort-tagged onnxruntime runner is
# checked with its tag.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh
staticcheck="$(go_tool honnef.co/go/tools/cmd/staticcheck "${STATICCHECK_VERSION:-v0.8.2}")"
"$staticcheck" ./...
"$staticcheck" -tags ort ./hack/ortrun
