#!/usr/bin/env bash
# hack/demo.sh (`make demo`): the whole story on a local control plane, no cluster needed.
#
#  1. builds fragile, starts etcd + kube-apiserver + kube-controller-manager + the local node
#     agent (hack/local-cluster.sh), installs the CRD and starts the operator;
#  2. publishes mnist-7 where the sample ModelWatermark points and applies it;
#  3. waits for Watermarked=True and Intact=True, and shows `kubectl describe`;
#  4. fine-tunes the deployed model in place (a quiet attack: test accuracy barely moves),
#     waits for the next scheduled verification, and shows `kubectl describe` again:
#     Intact=False with reason TamperDetected, the Warning event and the alerting metric;
#  5. stops everything it started.
#
# Every step is checked: the script exits non-zero if the story does not happen. The first
# run on a machine builds the Kubernetes binaries (~15 min, cached); later runs take ~2 min.
#
# DEMO_KEEP=1 leaves the cluster and the operator running at the end, for kubectl:
#   export KUBECONFIG=$DEMO_DIR/cluster/kubeconfig; kubectl get modelwatermarks
#   then: hack/local-cluster.sh stop (with LOCAL_CLUSTER_DIR=$DEMO_DIR/cluster) and kill the manager.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh
repo=$PWD

dir="${DEMO_DIR:-$(mktemp -d -t fragile-demo.XXXXXX)}"
mkdir -p "$dir/bin" "$dir/models"
dir=$(cd "$dir" && pwd)
export LOCAL_CLUSTER_DIR="$dir/cluster"
# The cluster stops itself if this script dies without running its trap (SIGKILL).
export LOCAL_CLUSTER_OWNER_PID=$$
image=ghcr.io/fragile-operator/fragile:dev
period=60
bold=$'\033[1m' plain=$'\033[0m'
[[ -t 1 ]] || { bold='' plain=''; }
started=$(date +%s)
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
note() { printf '   [%3ds] %s\n' $(($(date +%s) - started)) "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

manager_pid=''
cleanup() {
  local code=$?
  if [[ "${DEMO_KEEP:-0}" == 1 && $code == 0 ]]; then
    printf '\nLeft running (DEMO_KEEP=1): export KUBECONFIG=%s/kubeconfig; manager pid %s\n' "$LOCAL_CLUSTER_DIR" "$manager_pid"
    return
  fi
  step "Stop everything this demo started"
  if [[ -n "$manager_pid" ]]; then kill "$manager_pid" 2>/dev/null || true; wait "$manager_pid" 2>/dev/null || true; fi
  hack/local-cluster.sh stop >/dev/null 2>&1 || true
  note "control plane, node agent and operator stopped; logs in $dir"
  if [[ $code != 0 ]]; then
    echo "demo failed; the operator's log ends with:" >&2
    tail -20 "$dir/manager.log" >&2 2>/dev/null || true
  fi
}
trap cleanup EXIT

free_port() {
  local p=$1
  while (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

step "Build fragile, fragile-lab and the Kubernetes binaries (cached after the first run)"
go build -o "$dir/bin/fragile" ./cmd/fragile
go build -o "$dir/bin/fragile-lab" ./cmd/fragile-lab
eval "$(WITH_CONTROLLER_MANAGER=1 hack/setup-envtest.sh 2>/dev/null)"
export KUBEBUILDER_ASSETS
kubectl() { "$KUBEBUILDER_ASSETS/kubectl" "$@"; }
note "fragile and fragile-lab built; etcd, kube-apiserver, kube-controller-manager, kubectl $(kubectl version --client -o json | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p' | head -1)"

step "Start the local control plane (etcd, kube-apiserver, kube-controller-manager, node agent)"
eval "$(LOCAL_NODE_IMAGE_MAP="$image=$dir/bin/fragile" hack/local-cluster.sh start 2>"$dir/cluster-start.log")" ||
  { cat "$dir/cluster-start.log" >&2; die "the local control plane did not start"; }
note "ready; KUBECONFIG=$KUBECONFIG"
kubectl get nodes

step "Install the ModelWatermark CRD and start the operator"
kubectl apply -f config/crd/bases >/dev/null
kubectl wait --for condition=Established crd/modelwatermarks.fragile.dev --timeout 30s >/dev/null
metrics_port=$(free_port 18443)
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
# /metrics answers only tokens the API server authorizes for it: a ServiceAccount bound to the
# metrics-reader ClusterRole, as Prometheus's would be in a cluster.
kubectl apply -f config/rbac/metrics_reader_role.yaml >/dev/null
kubectl create serviceaccount metrics-scraper -n default >/dev/null
kubectl create clusterrolebinding metrics-scraper --clusterrole=metrics-reader --serviceaccount=default:metrics-scraper >/dev/null
metrics_token=$(kubectl create token metrics-scraper -n default)
code=$(curl -ks -o /dev/null -w '%{http_code}' "https://127.0.0.1:$metrics_port/metrics")
[[ $code == 401 ]] || die "/metrics without a token answered $code, not 401"
note "/metrics without a token: $code; with the metrics-scraper ServiceAccount's token: scraped below"

step "Publish mnist-7 where the sample points and apply the sample ModelWatermark"
"$dir/bin/fragile-lab" mnist7 --out "$dir/models/mnist-7.onnx"
# The sample mounts a node directory at /models; on this node, that directory is $dir/models.
# The demo verifies every $period s, the smallest period the API allows.
sed -e "s|path: /var/lib/fragile/models|path: $dir/models|" -e "s|periodSeconds: 600|periodSeconds: $period|" \
  config/samples/fragile_v1alpha1_modelwatermark.yaml | tee "$dir/modelwatermark.yaml" | kubectl apply -f -

# wait_for CONDITION STATUS TIMEOUT: poll, printing each change of the conditions.
wait_for() {
  local want="$1=$2" deadline=$(($(date +%s) + $3)) last='' now
  while :; do
    now=$(kubectl get modelwatermark mnist-7 -o jsonpath='{range .status.conditions[*]}{.type}={.status} {end}{"| "}{.status.training.progress}' 2>/dev/null || true)
    if [[ "$now" != "$last" ]]; then note "${now:-no status yet}"; last=$now; fi
    [[ " $now" == *" $want "* ]] && return 0
    (($(date +%s) < deadline)) || die "timed out waiting for $want; kubectl describe follows"$'\n'"$(kubectl describe modelwatermark mnist-7)"
    sleep 2
  done
}

step "Wait for the training Job: Watermarked=True"
wait_for Watermarked True 300
step "Wait for the first verification Job: Intact=True"
wait_for Intact True 180
wait_for Ready True 30

step "kubectl describe modelwatermark mnist-7 (before)"
kubectl describe modelwatermark mnist-7

step "Tamper: fine-tune the deployed file in place (20 Adam steps on MNIST digits)"
"$dir/bin/fragile-lab" attack finetune --model "$dir/models/mnist-7.onnx" --out "$dir/mnist-7-finetuned.onnx" \
  --data mnist --input-range 0,255 --steps 20 --lr 1e-4 --seed 3
mv "$dir/mnist-7-finetuned.onnx" "$dir/models/mnist-7.onnx"

step "Wait for the next scheduled verification (every ${period}s): Intact=False"
wait_for Intact False $((period + 180))

step "kubectl describe modelwatermark mnist-7 (after)"
kubectl describe modelwatermark mnist-7 | tee "$dir/describe-after.txt"
grep -q 'TamperDetected' "$dir/describe-after.txt" || die "describe shows no TamperDetected reason"
grep -Eq 'Warning +TamperDetected' "$dir/describe-after.txt" || die "describe shows no TamperDetected Warning event"

step "The alerting metric, scraped from the operator's /metrics"
curl -fks -H "Authorization: Bearer $metrics_token" "https://127.0.0.1:$metrics_port/metrics" | grep -E '^fragile_modelwatermark_(intact_status|mismatched_triggers)' | tee "$dir/metrics.txt"
grep -Eq 'intact_status\{.*status="False".*\} 1' "$dir/metrics.txt" || die "the intact_status metric does not show False"

printf '\n%sThe watermark caught the fine-tuning.%s Whole demo: %ds.\n' "$bold" "$plain" $(($(date +%s) - started))
