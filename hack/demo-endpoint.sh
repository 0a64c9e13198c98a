#!/usr/bin/env bash
# hack/demo-endpoint.sh: verify what is served, not what is stored. Watermark mnist-7,
# serve it with `fragile serve` on loopback (Open Inference Protocol / KServe V2), verify
# the live endpoint (intact), swap the served file for a copy with 1% weight noise while the
# server runs (tampered), then stop the server (could not verify, not tampered). Work files
# go to DEMO_DIR (default: a fresh temporary directory); the server is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
dir="${DEMO_DIR:-$(mktemp -d -t fragile-endpoint-demo.XXXXXX)}"
mkdir -p "$dir/served"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
expect_exit() { # expect_exit CODE COMMAND...: run, show, and insist on the exit status
  local want=$1 code=0; shift
  show "$@" || code=$?
  [[ $code == "$want" ]] || { echo "expected exit status $want, got $code" >&2; exit 1; }
}

server=""
stop_server() { if [[ -n "$server" ]]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; server=""; fi; }
trap stop_server EXIT

step "Build fragile and fragile-lab; fetch mnist-7 from the onnx-go module (not committed)"
go build -o "$dir/fragile" ./cmd/fragile
go build -o "$dir/fragile-lab" ./cmd/fragile-lab
"$dir/fragile-lab" mnist7 --out "$dir/mnist-7.onnx"
cd "$dir"

step "1. A key, and a watermark of mnist-7 with 100 triggers"
show ./fragile keygen --out key
show ./fragile watermark --model mnist-7.onnx --key key --out mnist-7.fwm --input-range 0,255

step "2. Serve the model over the Open Inference Protocol on loopback (re-read when the file changes)"
cp mnist-7.onnx served/mnist.onnx
./fragile serve --model served/mnist.onnx --port 0 --reload-interval 1s > serve.out 2> serve.log &
server=$!
for _ in $(seq 100); do grep -q '^serving' serve.out 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's|^serving .* at \(http://[^/]*\)/.*|\1|p' serve.out)
[[ -n "$url" ]] || { cat serve.log >&2; echo "fragile serve did not start" >&2; exit 1; }
cat serve.out
show curl -s "$url/v2/models/mnist"
echo

step "3. Verify the live endpoint"
expect_exit 0 ./fragile verify --endpoint "$url" --model-name mnist --bundle mnist-7.fwm --key key

step "4. Swap the served file for a copy with 1% weight noise, while the server runs"
./fragile-lab attack noise --model mnist-7.onnx --out noisy.onnx --sigma 0.01 --relative --seed 7
mv noisy.onnx served/mnist.onnx
sleep 2 # the server polls the file every second
grep 'loaded' serve.log | tail -1
expect_exit 1 ./fragile verify --endpoint "$url" --model-name mnist --bundle mnist-7.fwm --key key --json

step "5. A server that is gone is 'could not verify' (exit 2), never 'tampered'"
stop_server
expect_exit 2 ./fragile verify --endpoint "$url" --model-name mnist --bundle mnist-7.fwm --key key --retries 1

printf '\nDone. Files and the server log are in %s\n' "$dir"
