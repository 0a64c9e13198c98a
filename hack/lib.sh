# Shared helpers for hack/ scripts; source it.

# cache_dir is where downloaded and built tools live, outside the repository.
cache_dir="${FRAGILE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fragile-operator}"

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# onnxruntime_lib prints the path of onnxruntime's shared library, installing the
# npm package onnxruntime-node (which ships it) into the cache when absent.
onnxruntime_lib() {
  local dir="$cache_dir/npm" lib
  lib="$dir/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1"
  if [[ ! -f "$lib" ]]; then
    log "installing onnxruntime-node@1.30.0 from npm into $dir"
    mkdir -p "$dir"
    (cd "$dir" && npm install --no-audit --no-fund --ignore-scripts onnxruntime-node@1.30.0 >&2)
  fi
  echo "$lib"
}
