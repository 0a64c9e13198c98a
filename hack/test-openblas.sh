#!/usr/bin/env bash
# hack/test-openblas.sh: the OpenBLAS build, which the product binary and image use
# (docs/inference.md): the inference engine and verification tests with the
# openblas tag, and a statically linked bin/fragile that runs with no shared
# libraries. `go test ./...` in hack/test.sh covers the pure-Go build.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

if [[ ! -f /usr/lib/x86_64-linux-gnu/libopenblas.a ]]; then
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  log "installing libopenblas-dev with apt-get"
  "${sudo[@]}" apt-get update >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libopenblas-dev >&2
fi

log "go vet and go test with -tags openblas"
go vet -tags openblas ./pkg/fragile/...
go test -count=1 -tags openblas ./pkg/fragile/infer ./pkg/fragile

log "static product binary (make build)"
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
make --no-print-directory build BIN="$bin" >/dev/null
if ldd "$bin/fragile" >/dev/null 2>&1; then
  echo "bin/fragile is dynamically linked:" >&2; ldd "$bin/fragile" >&2; exit 1
fi
"$bin/fragile" --help >/dev/null 2>&1 || "$bin/fragile" help >/dev/null
