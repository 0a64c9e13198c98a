#!/usr/bin/env bash
# hack/demo-cli.sh: the ML core's story on mnist-7, no cluster needed: make a key,
# watermark the model, verify it (intact), add weight noise of 1% of each tensor's
# standard deviation, verify again (tampered), and show what "could not verify" looks
# like. Work files go to DEMO_DIR (default: a fresh temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh
dir="${DEMO_DIR:-$(mktemp -d -t fragile-demo.XXXXXX)}"
mkdir -p "$dir"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "Build fragile (the product) and fragile-lab (attacks, mnist-7 from the onnx-go module, not committed)"
go build -o "$dir/fragile" ./cmd/fragile
go build -o "$dir/fragile-lab" ./cmd/fragile-lab
"$dir/fragile-lab" mnist7 --out "$dir/mnist-7.onnx"
cd "$dir"

step "1. A secret key"
show ./fragile keygen --out key

step "2. Watermark mnist-7 with 100 triggers (the model itself is never changed)"
show ./fragile watermark --model mnist-7.onnx --key key --out mnist-7.fwm --input-range 0,255
show ./fragile inspect --bundle mnist-7.fwm --key key --png triggers.png

step "3. Verify the untouched model"
show ./fragile verify --model mnist-7.onnx --bundle mnist-7.fwm --key key

step "4. Tamper: Gaussian weight noise, sigma = 1% of each weight tensor's standard deviation"
show ./fragile-lab attack noise --model mnist-7.onnx --out mnist-7-noisy.onnx --sigma 0.01 --relative --seed 7
set +e
show ./fragile verify --model mnist-7-noisy.onnx --bundle mnist-7.fwm --key key --json
code=$?
set -e
[[ $code == 1 ]] || { echo "expected exit status 1 (tampered), got $code" >&2; exit 1; }

step "5. Could not verify is not tampered: a truncated model exits 2, not 1"
head -c 4000 mnist-7.onnx > truncated.onnx
set +e
show ./fragile verify --model truncated.onnx --bundle mnist-7.fwm --key key
code=$?
set -e
[[ $code == 2 ]] || { echo "expected exit status 2 (could not verify), got $code" >&2; exit 1; }

printf '\nDone. Files, including the trigger grid triggers.png, are in %s\n' "$dir"
