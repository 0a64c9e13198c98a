#!/usr/bin/env bash
# hack/setup-s3.sh: build the S3-compatible object store the tests and the demo run on
# loopback: versitygw (Apache-2.0, github.com/versity/versitygw) with its POSIX backend, which
# stores each bucket as a directory and each object as a file. Built from the Go module proxy
# alone and cached outside the repository, keyed by version, like hack/setup-envtest.sh: only
# the first run on a machine pays for the build (~4 min on 2 cores); later runs return at once.
#
#   eval "$(hack/setup-s3.sh)"   # exports FRAGILE_S3_SERVER=<path of the versitygw binary>
#
# Why versitygw and not MinIO: MinIO's server is AGPL-3.0, which this project does not use.
# versitygw is a production S3 gateway (multipart uploads, SigV4, TLS) whose POSIX backend needs
# no other service.
#
# Environment knobs:
#   VERSITYGW_VERSION   module version (default v1.8.0)
#   S3_CACHE            cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/fragile-operator/versitygw)
set -euo pipefail

VERSION="${VERSITYGW_VERSION:-v1.8.0}"
CACHE="${S3_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fragile-operator/versitygw}"
BIN="$CACHE/$VERSION/versitygw"
export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod

if [[ ! -x "$BIN" || ! -f "$CACHE/$VERSION/.ok" ]]; then
  echo "setup-s3: building versitygw $VERSION (uncached: a few minutes)" >&2
  mkdir -p "$CACHE/$VERSION"
  GOBIN="$CACHE/$VERSION" go install -trimpath -ldflags "-s -w" "github.com/versity/versitygw/cmd/versitygw@$VERSION" >&2
  touch "$CACHE/$VERSION/.ok"
fi
echo "export FRAGILE_S3_SERVER=$BIN"
