#!/usr/bin/env bash
# hack/eval.sh: the detection figures of BENCHMARKS.md, from scratch. Installs the
# data sets and onnxruntime when missing, trains the Fashion-MNIST models (no cache),
# runs the protocol (fragile-lab eval) in two parts, and splices each part's tables into
# BENCHMARKS.md between its markers:
#   - docs/eval: the Fashion-MNIST models and mnist-7, every method ("eval:begin/end");
#   - docs/eval-real: the real CIFAR-10 models of ../shared/realmodels and the PyTorch
#     fixtures of hack/torch, with REAL_METHODS ("eval-real:begin/end"). Without
#     ../shared the part still runs and its report says the real models were absent.
# QUICK=1 runs the CI-sized protocol of both parts into docs/eval-quick and
# docs/eval-real-quick instead. PART=mnist or PART=real runs one part only.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh
install_datasets
lib="$(onnxruntime_lib)"

# The real-model part runs the default method and the natural baseline: every
# method on eleven CIFAR-10 models would take hours on a 2-core machine.
real_methods="${REAL_METHODS:-tie,natural}"
quick=()
suffix=""
if [[ "${QUICK:-}" == 1 ]]; then
	quick=(--quick)
	suffix=-quick
	real_methods="${REAL_METHODS:-tie}"
fi

# run_eval NAME ARGS...: fragile eval into docs/NAME, spliced between NAME's markers.
run_eval() {
	local name="$1" out="docs/$1"
	shift
	rm -rf "$out"
	mkdir -p "$out"
	log "fragile-lab eval $* --out $out (log: $out/eval.log)"
	go run ./cmd/fragile-lab eval "$@" --out "$out" --ort-lib "$lib" >/dev/null 2>"$out/eval.log"

	# Splice: headings one level down, image links relative to the repository root.
	sed -e 's/^### /#### /' -e "s|](\(change-rate-[^)]*\))|]($out/\1)|" "$out/detection.md" >"$out/detection.spliced"
	if ! grep -qF "<!-- $name:begin -->" BENCHMARKS.md; then
		echo "BENCHMARKS.md has no <!-- $name:begin --> marker; tables left in $out/detection.md" >&2
		return 1
	fi
	awk -v begin="<!-- $name:begin -->" -v end="<!-- $name:end -->" -v file="$out/detection.spliced" '
		$0 == begin { print; while ((getline line < file) > 0) print line; skip = 1; next }
		$0 == end { skip = 0 }
		!skip { print }
	' BENCHMARKS.md >BENCHMARKS.md.new
	mv BENCHMARKS.md.new BENCHMARKS.md
	rm "$out/detection.spliced"
	log "done: $out/detection.md, BENCHMARKS.md updated"
}

if [[ "${PART:-}" != real ]]; then
	run_eval "eval$suffix" "${quick[@]}" --suites fashion,mnist7
fi
if [[ "${PART:-}" != mnist ]]; then
	torch=()
	if [[ -x hack/torch/fixtures.sh ]]; then
		torch=(--torch-dir "$(hack/torch/fixtures.sh)")
	fi
	run_eval "eval-real$suffix" "${quick[@]}" --suites real,torch --methods "$real_methods" "${torch[@]}"
fi
