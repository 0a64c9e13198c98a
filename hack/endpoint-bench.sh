#!/usr/bin/env bash
# hack/endpoint-bench.sh: the live-endpoint figures of BENCHMARKS.md: verification of 100
# triggers on mnist-7 through `fragile serve` on loopback, with and without decoys, next to
# verification of the same file, interleaved, medians of ROUNDS rounds (default 7).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
go run ./hack/endpointbench -rounds "${ROUNDS:-7}"
