#!/usr/bin/env bash
# hack/bench.sh: the speed figures of BENCHMARKS.md: watermark and verify mnist-7
# with 100 triggers, next to onnx-go's reference inference and onnxruntime on the
# same triggers in the same run. Medians of ROUNDS runs (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh
go run ./hack/bench -rounds "${ROUNDS:-5}" -ort-lib "$(onnxruntime_lib)"
