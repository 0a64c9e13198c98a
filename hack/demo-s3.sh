#!/usr/bin/env bash
# hack/demo-s3.sh (`make demo-s3`): a real CIFAR-10 classifier, trained by other people, whose
# sealed bundle does not fit in a Secret, protected through S3-compatible storage.
#
#  1. builds fragile, the Kubernetes binaries and versitygw (all cached after the first run),
#     starts versitygw on loopback, the local control plane and the operator;
#  2. uploads the model to s3://models/, applies a ModelWatermark reading it from there and
#     keeping its 100-trigger bundle (1.2 MB: a Secret holds 1 MiB) in s3://fragile-bundles/;
#  3. waits for Watermarked=True and Intact=True and shows the bundle in the bucket;
#  4. replaces the model in the bucket by a copy with 0.1% weight noise and waits for
#     Intact=False, TamperDetected;
#  5. deletes the ModelWatermark: its cleanup Job deletes the bundle from the bucket
#     (spec.bundle.reclaimPolicy Delete, the default), and the event says so;
#  6. stops everything it started.
#
# The model is ../shared/realmodels/cifar10/oval21__cifar_wide_kw.onnx (215k parameters;
# inputs are torchvision-normalised pixels: mean 0.485,0.456,0.406, std 0.225; see that folder's
# README), the fastest of those models to watermark. ../shared is not part of a clone: without
# it the demo says so and exits 0. DEMO_S3_MODEL, DEMO_S3_MEAN and DEMO_S3_STD name another
# 3x32x32 model and its normalisation. Every step is checked; DEMO_KEEP=1 leaves it running.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/demo-lib.sh

model="${DEMO_S3_MODEL:-../shared/realmodels/cifar10/oval21__cifar_wide_kw.onnx}"
mean="${DEMO_S3_MEAN:-0.485,0.456,0.406}"
std="${DEMO_S3_STD:-0.225,0.225,0.225}"
if [[ ! -f "$model" ]]; then
  echo "demo-s3: skipped: no CIFAR-10 model at $model (../shared/realmodels is not part of a clone;" \
    "set DEMO_S3_MODEL to a 3x32x32 ONNX classifier, with DEMO_S3_MEAN and DEMO_S3_STD)" >&2
  exit 0
fi
model=$(cd "$(dirname "$model")" && pwd)/$(basename "$model")
name=cifar10
period=60

demo_init demo-s3
demo_build
go build -o "$dir/bin/s3tool" ./hack/s3tool
eval "$(hack/setup-s3.sh 2>/dev/null)"

step "Start the S3 server: versitygw on loopback, POSIX backend in $dir/s3"
mkdir -p "$dir/s3"
s3_port=$(free_port 17070)
export AWS_ENDPOINT_URL="http://127.0.0.1:$s3_port" AWS_ACCESS_KEY_ID=fragile-demo AWS_REGION=us-east-1
AWS_SECRET_ACCESS_KEY="demo-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
export AWS_SECRET_ACCESS_KEY
"$FRAGILE_S3_SERVER" --access "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" --port "127.0.0.1:$s3_port" \
  --quiet posix "$dir/s3" >"$dir/versitygw.log" 2>&1 &
demo_pids+=($!)
for _ in $(seq 1 60); do (echo >"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null && break; sleep 0.5; done
"$dir/bin/s3tool" mb models fragile-bundles
"$dir/bin/s3tool" put "$model" s3://models/cifar10/model.onnx
note "versitygw $(basename "$(dirname "$FRAGILE_S3_SERVER")") at $AWS_ENDPOINT_URL; $("$dir/bin/s3tool" stat s3://models/cifar10/model.onnx)"

demo_start_cluster
demo_start_operator

step "Apply a ModelWatermark: model and bundle in S3, credentials in a Secret"
kubectl create secret generic s3-credentials --from-literal=AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL" \
  --from-literal=AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" --from-literal=AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" >/dev/null
tee "$dir/modelwatermark.yaml" <<EOF | kubectl apply -f -
apiVersion: fragile.dev/v1alpha1
kind: ModelWatermark
metadata:
  name: $name
spec:
  model:
    uri: s3://models/cifar10/model.onnx
    s3: {secretName: s3-credentials}
    inputRange: {min: "0", max: "1"}
    input:
      mean: [$(sed 's/\([^,]*\)/"\1"/g' <<<"$mean")]
      std: [$(sed 's/\([^,]*\)/"\1"/g' <<<"$std")]
  bundle:
    uri: s3://fragile-bundles/demo/$name
    s3: {secretName: s3-credentials}
  triggers: 100
  training: {timeoutSeconds: 1800}
  verification: {periodSeconds: $period, timeoutSeconds: 600}
EOF

step "Wait for the training Job: Watermarked=True"
wait_for $name Watermarked True 1800
step "Wait for the first verification Job: Intact=True"
wait_for $name Intact True 300
size=$(kubectl get modelwatermark $name -o jsonpath='{.status.bundle.sizeBytes}')
digest=$(kubectl get modelwatermark $name -o jsonpath='{.status.bundle.digest}')
((size > 1048576)) || die "the bundle is $size bytes: it would have fit in a Secret"
stat=$("$dir/bin/s3tool" stat s3://fragile-bundles/demo/$name)
[[ "$stat" == *"$size bytes $digest" ]] || die "the bucket holds $stat, status.bundle says $size bytes $digest"
note "status.bundle: $(kubectl get modelwatermark $name -o jsonpath='{.status.bundle}')"
note "in the bucket: $stat (a Secret holds 1048576)"

step "kubectl describe modelwatermark $name (before)"
kubectl describe modelwatermark $name

step "Tamper: replace the model in the bucket by a copy with 0.1% weight noise"
"$dir/bin/fragile-lab" attack noise --model "$model" --out "$dir/noisy.onnx" --sigma 0.001 --relative --seed 3
"$dir/bin/s3tool" put "$dir/noisy.onnx" s3://models/cifar10/model.onnx

step "Wait for the next scheduled verification (every ${period}s): Intact=False"
wait_for $name Intact False $((period + 300))
kubectl describe modelwatermark $name | tee "$dir/describe-after.txt"
grep -Eq 'Warning +TamperDetected' "$dir/describe-after.txt" || die "describe shows no TamperDetected Warning event"

step "Delete the ModelWatermark: its cleanup Job deletes the bundle from the bucket"
kubectl delete modelwatermark $name --wait=true --timeout=300s
if "$dir/bin/s3tool" stat s3://fragile-bundles/demo/$name 2>/dev/null; then die "the bundle is still in the bucket"; fi
kubectl get events --field-selector involvedObject.name=$name -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message |
  grep -E 'TYPE|BundleCleanup|BundleDeleted' | tee "$dir/cleanup-events.txt"
grep -q BundleDeleted "$dir/cleanup-events.txt" || die "no BundleDeleted event"
"$dir/bin/s3tool" stat s3://models/cifar10/model.onnx >/dev/null || die "the model, which is the user's, is gone"
note "the bundle left the bucket; the model stayed"

printf '\n%sA CIFAR-10 model protected through S3, tampering caught, its bundle reclaimed.%s Whole demo: %ds.\n' \
  "$bold" "$plain" $(($(date +%s) - started))
