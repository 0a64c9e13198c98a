#!/usr/bin/env bash
# hack/eval.sh: the detection figures of BENCHMARKS.md, from scratch. Installs the
# data sets and onnxruntime when missing, trains the Fashion-MNIST models (no cache),
# runs the whole protocol (fragile-lab eval), writes docs/eval/detection.md and the
# plots next to it, and splices the tables into BENCHMARKS.md between its
# "eval:begin" and "eval:end" markers. QUICK=1 runs the CI-sized protocol into
# docs/eval-quick instead and splices it between "eval-quick:begin/end".
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh
install_datasets
lib="$(onnxruntime_lib)"

name=eval args=()
if [[ "${QUICK:-}" == 1 ]]; then
	name=eval-quick args=(--quick)
fi
out="docs/$name"
rm -rf "$out"
mkdir -p "$out"
log "fragile-lab eval ${args[*]} --out $out (log: $out/eval.log)"
go run ./cmd/fragile-lab eval "${args[@]}" --out "$out" --ort-lib "$lib" >/dev/null 2>"$out/eval.log"

# Splice: headings one level down, image links relative to the repository root.
sed -e 's/^### /#### /' -e "s|](\(change-rate-[^)]*\))|]($out/\1)|" "$out/detection.md" >"$out/detection.spliced"
awk -v begin="<!-- $name:begin -->" -v end="<!-- $name:end -->" -v file="$out/detection.spliced" '
	$0 == begin { print; while ((getline line < file) > 0) print line; skip = 1; next }
	$0 == end { skip = 0 }
	!skip { print }
' BENCHMARKS.md >BENCHMARKS.md.new
if ! grep -qF "<!-- $name:begin -->" BENCHMARKS.md; then
	rm -f BENCHMARKS.md.new
	echo "BENCHMARKS.md has no <!-- $name:begin --> marker; tables left in $out/detection.md" >&2
	exit 1
fi
mv BENCHMARKS.md.new BENCHMARKS.md
rm "$out/detection.spliced"
log "done: $out/detection.md, BENCHMARKS.md updated"
