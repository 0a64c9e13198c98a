# hack/demo-lib.sh: what the local-cluster demos share (sourced by hack/demo.sh and
# hack/demo-s3.sh): a work directory, the build, the local control plane, the operator, a
# condition waiter, and a trap that stops everything the demo started.
#
#   demo_init NAME     work directory ($DEMO_DIR or a fresh one), output helpers, the exit trap
#   demo_build         fragile and fragile-lab into $dir/bin; the Kubernetes binaries (cached)
#   demo_start_cluster etcd, kube-apiserver, kube-controller-manager, the node agent
#   demo_start_operator the CRD and `fragile manager`; sets metrics_port and manager_pid
#   wait_for NAME CONDITION STATUS TIMEOUT   poll a ModelWatermark, printing each change
#
# A demo adds the PIDs of its own servers to demo_pids; the trap stops them too.
# shellcheck shell=bash

source hack/lib.sh

demo_init() {
  dir="${DEMO_DIR:-$(mktemp -d -t "fragile-$1.XXXXXX")}"
  mkdir -p "$dir/bin" "$dir/models"
  dir=$(cd "$dir" && pwd)
  export LOCAL_CLUSTER_DIR="$dir/cluster"
  # The cluster stops itself if the demo dies without running its trap (SIGKILL).
  export LOCAL_CLUSTER_OWNER_PID=$$
  image=ghcr.io/fragile-operator/fragile:dev
  bold=$'\033[1m' plain=$'\033[0m'
  [[ -t 1 ]] || { bold='' plain=''; }
  started=$(date +%s)
  manager_pid=''
  demo_pids=()
  trap demo_cleanup EXIT
}

step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
note() { printf '   [%3ds] %s\n' $(($(date +%s) - started)) "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

demo_cleanup() {
  local code=$? pid
  if [[ "${DEMO_KEEP:-0}" == 1 && $code == 0 ]]; then
    printf '\nLeft running (DEMO_KEEP=1): export KUBECONFIG=%s/kubeconfig; manager pid %s; other pids %s\n' \
      "$LOCAL_CLUSTER_DIR" "$manager_pid" "${demo_pids[*]}"
    return
  fi
  step "Stop everything this demo started"
  for pid in "$manager_pid" "${demo_pids[@]}"; do
    [[ -n "$pid" ]] || continue
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  hack/local-cluster.sh stop >/dev/null 2>&1 || true
  note "control plane, node agent, operator and servers stopped; logs in $dir"
  if [[ $code != 0 ]]; then
    echo "demo failed; the operator's log ends with:" >&2
    tail -20 "$dir/manager.log" >&2 2>/dev/null || true
  fi
}

free_port() {
  local p=$1
  while (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

demo_build() {
  step "Build fragile, fragile-lab and the Kubernetes binaries (cached after the first run)"
  go build -o "$dir/bin/fragile" ./cmd/fragile
  go build -o "$dir/bin/fragile-lab" ./cmd/fragile-lab
  eval "$(WITH_CONTROLLER_MANAGER=1 hack/setup-envtest.sh 2>/dev/null)"
  export KUBEBUILDER_ASSETS
  note "fragile and fragile-lab built; etcd, kube-apiserver, kube-controller-manager, kubectl $(kubectl version --client -o json | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p' | head -1)"
}

kubectl() { "$KUBEBUILDER_ASSETS/kubectl" "$@"; }

demo_start_cluster() {
  step "Start the local control plane (etcd, kube-apiserver, kube-controller-manager, node agent)"
  eval "$(LOCAL_NODE_IMAGE_MAP="$image=$dir/bin/fragile" hack/local-cluster.sh start 2>"$dir/cluster-start.log")" ||
    { cat "$dir/cluster-start.log" >&2; die "the local control plane did not start"; }
  note "ready; KUBECONFIG=$KUBECONFIG"
  kubectl get nodes
}

demo_start_operator() {
  step "Install the ModelWatermark CRD and start the operator"
  kubectl apply -f config/crd/bases >/dev/null
  kubectl wait --for condition=Established crd/modelwatermarks.fragile.dev --timeout 30s >/dev/null
  metrics_port=$(free_port 18443)
  local probe_port
  probe_port=$(free_port $((metrics_port + 1)))
  "$dir/bin/fragile" manager --job-image "$image" \
    --metrics-bind-address "127.0.0.1:$metrics_port" --health-probe-bind-address "127.0.0.1:$probe_port" \
    >"$dir/manager.log" 2>&1 &
  manager_pid=$!
  for _ in $(seq 1 60); do
    curl -fs "http://127.0.0.1:$probe_port/readyz" >/dev/null 2>&1 && break
    kill -0 "$manager_pid" 2>/dev/null || die "the operator exited; see $dir/manager.log"
    sleep 0.5
  done
  note "operator running (pid $manager_pid), metrics on https://127.0.0.1:$metrics_port/metrics"
}

# wait_for NAME CONDITION STATUS TIMEOUT: poll, printing each change of the conditions.
wait_for() {
  local name=$1 want="$2=$3" deadline=$(($(date +%s) + $4)) last='' now
  while :; do
    now=$(kubectl get modelwatermark "$name" -o jsonpath='{range .status.conditions[*]}{.type}={.status} {end}{"| "}{.status.training.progress}' 2>/dev/null || true)
    if [[ "$now" != "$last" ]]; then note "${now:-no status yet}"; last=$now; fi
    [[ " $now" == *" $want "* ]] && return 0
    (($(date +%s) < deadline)) || die "timed out waiting for $want; kubectl describe follows"$'\n'"$(kubectl describe modelwatermark "$name")"
    sleep 2
  done
}
