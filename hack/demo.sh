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
source hack/demo-lib.sh
period=60

demo_init demo
demo_build
demo_start_cluster
demo_start_operator
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

step "Wait for the training Job: Watermarked=True"
wait_for mnist-7 Watermarked True 300
step "Wait for the first verification Job: Intact=True"
wait_for mnist-7 Intact True 180
wait_for mnist-7 Ready True 30

step "kubectl describe modelwatermark mnist-7 (before)"
kubectl describe modelwatermark mnist-7

step "Tamper: fine-tune the deployed file in place (20 Adam steps on MNIST digits)"
"$dir/bin/fragile-lab" attack finetune --model "$dir/models/mnist-7.onnx" --out "$dir/mnist-7-finetuned.onnx" \
  --data mnist --input-range 0,255 --steps 20 --lr 1e-4 --seed 3
mv "$dir/mnist-7-finetuned.onnx" "$dir/models/mnist-7.onnx"

step "Wait for the next scheduled verification (every ${period}s): Intact=False"
wait_for mnist-7 Intact False $((period + 180))

step "kubectl describe modelwatermark mnist-7 (after)"
kubectl describe modelwatermark mnist-7 | tee "$dir/describe-after.txt"
grep -q 'TamperDetected' "$dir/describe-after.txt" || die "describe shows no TamperDetected reason"
grep -Eq 'Warning +TamperDetected' "$dir/describe-after.txt" || die "describe shows no TamperDetected Warning event"

step "The alerting metric, scraped from the operator's /metrics"
curl -fks -H "Authorization: Bearer $metrics_token" "https://127.0.0.1:$metrics_port/metrics" | grep -E '^fragile_modelwatermark_(intact_status|mismatched_triggers)' | tee "$dir/metrics.txt"
grep -Eq 'intact_status\{.*status="False".*\} 1' "$dir/metrics.txt" || die "the intact_status metric does not show False"

printf '\n%sThe watermark caught the fine-tuning.%s Whole demo: %ds.\n' "$bold" "$plain" $(($(date +%s) - started))
