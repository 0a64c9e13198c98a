#!/usr/bin/env bash
# hack/families.sh: issue 9's acceptance on the torchvision families, through the
# CLI a user runs. For each family at 3x32x32 (opset 13 unless OPSET is set):
# `fragile watermark --triggers 100`, `fragile verify` of the same file (must be
# intact), and verify of a copy from `fragile attack noise --sigma 1e-3 --relative`
# (must be tampered). Prints one line per family with the wall time of each step;
# ROUNDS (default 1) watermarks each family that many times and reports the median.
#
#   hack/families.sh [FAMILY...]      # default: all nine
#
# The fixtures come from hack/torch/fixtures.sh (or FRAGILE_TORCH_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

dir="${FRAGILE_TORCH_DIR:-$(hack/torch/fixtures.sh)}"
opset="${OPSET:-13}"
rounds="${ROUNDS:-1}"
families=("$@")
[[ ${#families[@]} -gt 0 ]] || families=(resnet18 mobilenet_v2 mobilenet_v3_small squeezenet1_1 efficientnet_b0
  shufflenet_v2_x0_5 densenet121 regnet_x_400mf vgg11_bn)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
go build -o "$work/fragile" ./cmd/fragile
fragile="$work/fragile"
"$fragile" keygen -out "$work/key" >/dev/null

# timed runs a command and prints its wall and CPU (user+system) seconds as WALL/CPU:
# on a shared machine the CPU time is the figure that does not depend on the load.
timed() {
  local TIMEFORMAT='%R %U %S'
  { time "$@" >"$work/out" 2>&1; } 2>"$work/time" || { cat "$work/out" >&2; return 1; }
  awk '{printf "%.0f/%.0f\n", $1, $2 + $3}' "$work/time"
}
median() { printf '%s\n' "$@" | sort -t/ -n -k1 | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

printf '%-20s %24s %8s %20s\n' family "watermark wall/CPU (s)" intact "noise 1e-3 relative"
failed=0
for family in "${families[@]}"; do
  model="$dir/${family}_32_op${opset}.onnx"
  [[ -f $model ]] || { log "no fixture $model"; exit 1; }
  times=()
  for ((r = 0; r < rounds; r++)); do
    if ! t="$(timed "$fragile" watermark -key "$work/key" -model "$model" -triggers 100 -out "$work/bundle")"; then
      printf '%-20s watermark failed: %s\n' "$family" "$(tail -n1 "$work/out")"
      failed=1
      continue 2
    fi
    times+=("$t")
    # The steps and margins, for the benchmark notes (stderr: the table stays as it is).
    log "$family round $((r + 1)): $t s wall/CPU; $(grep -m1 '^watermarked' "$work/out" | sed 's/^watermarked [^:]*: //')"
  done
  status=0
  "$fragile" verify -key "$work/key" -bundle "$work/bundle" -model "$model" >"$work/intact" || status=$?
  intact=yes
  [[ $status -eq 0 ]] || { intact="no (exit $status)"; failed=1; }
  "$fragile" attack noise -model "$model" -out "$work/noisy.onnx" -sigma 1e-3 -relative >/dev/null
  status=0
  "$fragile" verify -key "$work/key" -bundle "$work/bundle" -model "$work/noisy.onnx" >"$work/noisy" || status=$?
  noise="$(grep -o '[0-9]* of [0-9]* triggers' "$work/noisy" || true) changed"
  [[ $status -eq 1 ]] || { noise="not detected (exit $status)"; failed=1; }
  printf '%-20s %24s %8s %20s\n' "$family" "$(median "${times[@]}") (${times[*]})" "$intact" "$noise"
done
exit $failed
