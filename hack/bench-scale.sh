#!/usr/bin/env bash
# hack/bench-scale.sh: the "Scale on the local control plane" figures of BENCHMARKS.md. Starts
# hack/local-cluster.sh (etcd, kube-apiserver, kube-controller-manager with the real Job
# controller, the node agent), runs the real manager binary, creates N ModelWatermarks (default
# 1000) on mnist-7 and measures their periodic verification by real Jobs and Pods. Arguments go
# to hack/benchscale (-n, -period, -rounds, -slack, -keep, -dir, -timeout). Everything it
# starts is stopped at the end, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh
export GOTOOLCHAIN=local
eval "$(WITH_CONTROLLER_MANAGER=1 WITH_KUBECTL=1 hack/setup-envtest.sh)"
export KUBEBUILDER_ASSETS
bin=$(mktemp -d -t benchscale-bin.XXXXXX)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/benchscale" ./hack/benchscale
log "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin/benchscale" "$@"
log "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
