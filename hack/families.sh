#!/usr/bin/env bash
# hack/families.sh: issue 9's acceptance through the CLI a user runs, on the torchvision
# families at 3x32x32 (opset 13 unless OPSET is set) and on the real CIFAR-10 models of
# ../shared/realmodels/cifar10. For each model: `fragile watermark --triggers 100`
# (real models: with the mean/std their README documents), `fragile verify` of the same
# file (must be intact), and verify of a copy from `fragile-lab attack noise --sigma 1e-3
# --relative` (must be tampered). ROUNDS (default 1) watermarks each model that many
# times; a row gives the median wall and the median CPU (user+system) time, each round's
# CPU time, the steps, both verifications and the 1-minute load average when the row
# was done (on a shared machine CPU time is the figure that does not depend on the load).
#
#   hack/families.sh [NAME...]   # torchvision family or real model name; default: the nine families
#   hack/families.sh real        # the eleven real CIFAR-10 models, one at a time
#
# The fixtures come from hack/torch/fixtures.sh (or FRAGILE_TORCH_DIR), the real models
# from FRAGILE_REALMODELS_DIR (default ../shared/realmodels/cifar10); a real model that
# is absent is reported as skipped, never as passed.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

opset="${OPSET:-13}"
rounds="${ROUNDS:-1}"
realdir="${FRAGILE_REALMODELS_DIR:-../shared/realmodels/cifar10}"
families=(resnet18 mobilenet_v2 mobilenet_v3_small squeezenet1_1 efficientnet_b0
  shufflenet_v2_x0_5 densenet121 regnet_x_400mf vgg11_bn)
# The eleven real models, in the order of ../shared/realmodels/README.md.
realmodels=(cifar10_resnet__resnet_2b cifar10_resnet__resnet_4b
  oval21__cifar_base_kw oval21__cifar_deep_kw oval21__cifar_wide_kw
  sri_resnet_a__resnet_3b2_bn_mixup_adv_4.0_bs128_lr-1
  sri_resnet_b__resnet_3b2_bn_mixup_ssadv_4.0_bs128_lr-1_v2
  cifar_biasfield__cifar_base
  marabou-cifar10__cifar10_small marabou-cifar10__cifar10_medium marabou-cifar10__cifar10_large)

names=()
for arg in "$@"; do
  if [[ $arg == real ]]; then names+=("${realmodels[@]}"); else names+=("$arg"); fi
done
[[ ${#names[@]} -gt 0 ]] || names=("${families[@]}")

# normalisation prints the watermark flags for a real model: the per-channel mean and
# std its README documents for pixels in [0,1]. cifar_biasfield documents none; the
# README measures a std of about 0.247, so it gets the cifar10_resnet statistics (as
# internal/zoo does). marabou's NHWC models take the raw [0,1] pixels.
normalisation() {
  case "$1" in
  cifar10_resnet__* | cifar_biasfield__*) echo "-input-mean 0.4914,0.4822,0.4465 -input-std 0.2471,0.2435,0.2616" ;;
  oval21__*) echo "-input-mean 0.485,0.456,0.406 -input-std 0.225,0.225,0.225" ;;
  sri_resnet_*) echo "-input-mean 0.4914,0.4822,0.4465 -input-std 0.2023,0.1994,0.2010" ;;
  marabou-*) echo "" ;;
  *) log "no documented normalisation for $1"; return 1 ;;
  esac
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# BUILD_TAGS=openblas measures the OpenBLAS build the image ships; default: pure Go.
go build -tags "${BUILD_TAGS:-}" -o "$work/fragile" ./cmd/fragile
go build -tags "${BUILD_TAGS:-}" -o "$work/fragile-lab" ./cmd/fragile-lab
fragile="$work/fragile"
"$fragile" keygen -out "$work/key" >/dev/null

# timed runs a command and prints its wall and CPU (user+system) seconds as "WALL CPU".
timed() {
  local TIMEFORMAT='%R %U %S'
  { time "$@" >"$work/out" 2>&1; } 2>"$work/time" || { cat "$work/out" >&2; return 1; }
  awk '{printf "%.0f %.0f\n", $1, $2 + $3}' "$work/time"
}
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
load() { cut -d' ' -f1 /proc/loadavg; }

failed=0
declare -A intact noise
# verify NAME MODEL: the bundle of NAME's first round against the same file (must be
# intact) and against a copy with relative weight noise of 1e-3 (must be tampered).
verify() {
  local name="$1" m="$2" status=0
  "$fragile" verify -key "$work/key" -bundle "$work/$name.bundle" -model "$m" >"$work/intact" || status=$?
  intact[$name]=yes
  [[ $status -eq 0 ]] || { intact[$name]="no (exit $status)"; failed=1; }
  status=0
  if "$work/fragile-lab" attack noise -model "$m" -out "$work/noisy.onnx" -sigma 1e-3 -relative >"$work/attack" 2>&1; then
    "$fragile" verify -key "$work/key" -bundle "$work/$name.bundle" -model "$work/noisy.onnx" >"$work/noisy" || status=$?
    noise[$name]="$(grep -o '[0-9]* of [0-9]* triggers' "$work/noisy" || true) changed"
    [[ $status -eq 1 ]] || { noise[$name]="not detected (exit $status)"; failed=1; }
  else
    noise[$name]="attack failed: $(tail -n1 "$work/attack")"
    failed=1
  fi
  log "$name: verify ${intact[$name]}, noise 1e-3 relative ${noise[$name]}"
}

log "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- cmd pkg internal || echo ' (with local changes)'), $rounds round(s), load average $(cut -d' ' -f1-3 /proc/loadavg)"

# Resolve every model and its flags first, so a missing fixture stops the run at once.
declare -A model flags
for name in "${names[@]}"; do
  if [[ " ${realmodels[*]} " == *" $name "* ]]; then
    model[$name]="$realdir/$name.onnx"
    flags[$name]="$(normalisation "$name")"
  else
    dir="${FRAGILE_TORCH_DIR:-$(hack/torch/fixtures.sh)}"
    model[$name]="$dir/${name}_32_op${opset}.onnx" flags[$name]=""
    [[ -f ${model[$name]} ]] || { log "no fixture ${model[$name]}"; exit 1; }
  fi
done

# summary prints one row per model: what every finished round measured (also when the
# run is stopped early, by the trap below).
summary() {
  printf '%-58s %16s %16s %6s %8s %22s %5s\n' model "median wall/CPU" "CPU per round" steps intact "noise 1e-3 relative" load
  for name in "${names[@]}"; do
    if [[ -n ${result[$name]:-} ]]; then
      printf '%-58s %s\n' "$name" "${result[$name]}"
      continue
    fi
    [[ -n ${walls[$name]:-} ]] || { printf '%-58s not run\n' "$name"; continue; }
    read -r -a w <<<"${walls[$name]}"
    read -r -a c <<<"${cpus[$name]}"
    cpu_rounds="$(
      IFS=,
      echo "${c[*]}"
    )"
    printf '%-58s %16s %16s %6s %8s %22s %5s\n' "$name" "$(median "${w[@]}")/$(median "${c[@]}") s" \
      "$cpu_rounds" "${steps[$name]}" "${intact[$name]:-}" "${noise[$name]:-}" "$(range ${loads[$name]})"
  done
}
range() { printf '%s\n' "$@" | sort -n | sed -n '1p;$p' | paste -sd- | sed 's/^\([^-]*\)-\1$/\1/'; }

# Round-major: every model's first watermark (and its verifications) comes before any
# model's second, so a run cut short still has a figure for every model; each round is
# logged as it ends.
declare -A walls cpus loads steps result
trap 'summary; exit 130' INT TERM
for ((r = 1; r <= rounds; r++)); do
  for name in "${names[@]}"; do
    m="${model[$name]}"
    if [[ ! -f $m ]]; then
      result[$name]="skipped: no $m (../shared is not part of a clone)"
      continue
    fi
    [[ -z ${result[$name]:-} ]] || continue # failed or skipped in an earlier round
    read -r -a f <<<"${flags[$name]}"
    if ! t="$(timed "$fragile" watermark -key "$work/key" -model "$m" -triggers 100 "${f[@]}" -out "$work/$name.bundle")"; then
      result[$name]="watermark failed (round $r): $(tail -n1 "$work/out")"
      failed=1
      log "$name round $r: ${result[$name]}"
      continue
    fi
    read -r wall cpu <<<"$t"
    walls[$name]+="$wall " cpus[$name]+="$cpu " loads[$name]+="$(load) "
    steps[$name]="$(grep -o 'after [0-9]* steps' "$work/out" | cut -d' ' -f2 || true)"
    log "$name round $r: watermark ${wall} s wall, ${cpu} s CPU, ${steps[$name]} steps, load $(load)"
    [[ $r -eq 1 ]] || continue
    verify "$name" "$m"
  done
done

summary
exit $failed
