#!/usr/bin/env bash
# hack/bench-controller.sh: the "Controller" figures of BENCHMARKS.md. Runs the real manager
# binary against envtest's kube-apiserver and etcd with N ModelWatermarks (default 1000) and
# prints reconcile latency percentiles and the manager's memory. Arguments go to
# hack/benchcontroller (-n, -workers, -timeout).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh
export GOTOOLCHAIN=local
eval "$(hack/setup-envtest.sh)"
export KUBEBUILDER_ASSETS
log "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
go run ./hack/benchcontroller "$@"
log "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
