#!/usr/bin/env bash
# hack/setup-envtest.sh: build the Kubernetes control-plane binaries this project tests and demos
# against (etcd, kube-apiserver, kubectl and optionally kube-controller-manager) from the Go module
# proxy alone: no setup-envtest download, no Docker, no other hosts. Binaries are cached outside
# the repository, keyed by version, so only the first run on a machine pays for the build
# (~12-17 min on 2 cores); later runs return in under a second.
#
#   eval "$(hack/setup-envtest.sh)"   # exports KUBEBUILDER_ASSETS=<dir>
#
# Environment knobs:
#   K8S_VERSION              k8s.io/kubernetes tag (client-go v0.37.2 -> 1.37.2)
#   ETCD_VERSION             go.etcd.io/etcd/server/v3 tag
#   WITH_KUBECTL=1           also build a matching kubectl (default 1)
#   WITH_CONTROLLER_MANAGER  also build kube-controller-manager for the local demo cluster (default 0)
#   ENVTEST_CACHE            cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/fragile-operator/envtest)
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
WITH_KUBECTL="${WITH_KUBECTL:-1}"
WITH_CONTROLLER_MANAGER="${WITH_CONTROLLER_MANAGER:-0}"
CACHE="${ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fragile-operator/envtest}"
ASSETS="$CACHE/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}"

export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod
log() { echo "setup-envtest: $*" >&2; }
mkdir -p "$ASSETS"

have() { [[ -x "$ASSETS/$1" && -f "$ASSETS/.ok-$1" ]]; }

# k8s.io/kubernetes replaces its staging modules (k8s.io/api, k8s.io/apiserver, ...) with ./staging
# paths, so `go install k8s.io/kubernetes/cmd/kube-apiserver@v...` is refused. A throwaway wrapper
# module requires k8s.io/kubernetes and points every staging module at its published tag instead.
pkgs=()
have kube-apiserver || pkgs+=(k8s.io/kubernetes/cmd/kube-apiserver)
[[ "$WITH_KUBECTL" != 1 ]] || have kubectl || pkgs+=(k8s.io/kubernetes/cmd/kubectl)
[[ "$WITH_CONTROLLER_MANAGER" != 1 ]] || have kube-controller-manager || pkgs+=(k8s.io/kubernetes/cmd/kube-controller-manager)
if ((${#pkgs[@]})); then
  src="$CACHE/src-k8s-$K8S_VERSION"
  mkdir -p "$src"
  v="v$K8S_VERSION"; major=${K8S_VERSION%%.*}; minor=${K8S_VERSION#*.}; minor=${minor%%.*}
  gomod=$(cd "$CACHE" && go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    printf 'module local/envtest-k8s-build\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$v"
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 v0.'"${K8S_VERSION#1.}"'#p' "$gomod"
    printf ')\n'
  } > "$src/go.mod"
  ldf="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf+=" -X $p.gitVersion=$v -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.gitCommit=module-$v"
  done
  log "building ${pkgs[*]##*/} @ $v (uncached: ~12-17 min on 2 cores)"
  ( cd "$src" && go get "${pkgs[@]/%/@$v}" >&2 \
    && go build -trimpath -ldflags "$ldf" -o "$ASSETS/" "${pkgs[@]}" >&2 )
  for p in "${pkgs[@]}"; do touch "$ASSETS/.ok-${p##*/}"; done
fi

# etcd's server/v3 go.mod also has ../ replaces: same wrapper trick. Its main package is the module
# root, so the output name must be given explicitly.
if ! have etcd; then
  esrc="$CACHE/src-etcd-$ETCD_VERSION"
  mkdir -p "$esrc"
  printf 'module local/envtest-etcd-build\n\ngo 1.26.0\n' > "$esrc/go.mod"
  log "building etcd v$ETCD_VERSION (uncached: ~2-3 min)"
  ( cd "$esrc" && go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >&2 \
    && go build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=v$ETCD_VERSION" \
         -o "$ASSETS/etcd" go.etcd.io/etcd/server/v3 >&2 )
  touch "$ASSETS/.ok-etcd"
fi

log "$("$ASSETS/kube-apiserver" --version), $("$ASSETS/etcd" --version | head -1)"
echo "export KUBEBUILDER_ASSETS=$ASSETS"
