#!/usr/bin/env bash
# hack/bench.sh: the speed figures of BENCHMARKS.md ("Speed of verification and
# watermarking"): full verify and inference of 100 triggers on mnist-7, resnet_2b
# (../shared/realmodels), resnet18 3x32x32 and mobilenet_v2 3x224x224 (the PyTorch
# fixtures of hack/torch), next to onnxruntime in its own process on the same
# inputs, at one and two threads each; allocation per run; watermark times.
# Medians of ROUNDS runs (default 7). BUILD_TAGS=openblas measures the OpenBLAS
# build (the product's default, see docs/inference.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh
torch_dir="${FRAGILE_TORCH_DIR:-}"
if [[ -z "$torch_dir" && -x hack/torch/fixtures.sh ]]; then
  torch_dir="$(hack/torch/fixtures.sh)"
fi
go run -tags "${BUILD_TAGS:-openblas}" ./hack/bench -rounds "${ROUNDS:-7}" -watermark-rounds "${WATERMARK_ROUNDS:-3}" \
  -ort-lib "$(onnxruntime_lib)" -torch-dir "$torch_dir" ${BENCH_ARGS:-}
