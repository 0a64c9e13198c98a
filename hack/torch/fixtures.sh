#!/usr/bin/env bash
# hack/torch/fixtures.sh: prints the directory of the PyTorch fixtures (torchvision
# classifiers exported to ONNX with seeded random weights, and PyTorch's logits; see
# hack/torch/export.py for the files), exporting them first when absent:
#
#   export FRAGILE_TORCH_DIR="$(hack/torch/fixtures.sh)"
#
# The directory is ~/.cache/fragile-operator/torch/HASH, HASH being the hash of the
# exporter (export.py) and of the Debian versions of python3-torch, -torchvision and
# -onnx: a changed exporter or library exports again into a new directory, an
# unchanged one returns at once (no Python starts). Installs those packages when
# missing (root or sudo).
# Everything but the directory goes to stderr.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"

python=(env -u PYTHONPATH -u LD_LIBRARY_PATH /usr/bin/python3)
packages=(python3-torch python3-torchvision python3-onnx)

installed() {
  local p
  for p in "${packages[@]}"; do
    [[ $(dpkg-query -W -f '${db:Status-Abbrev}' "$p" 2>/dev/null) == ii* ]] || return 1
  done
}
installed || apt_install "${packages[@]}"
hash=$({ cat "$here/export.py"; dpkg-query -W -f '${Package}=${Version}\n' "${packages[@]}"; } | sha256sum | cut -c1-16)
dir="$cache_dir/torch/$hash"
if [[ -f "$dir/manifest.json" ]]; then
  echo "$dir"
  exit 0
fi

mkdir -p "$cache_dir/torch"
# One export at a time: a second caller waits for the first and then finds the result.
exec 9>"$cache_dir/torch/.lock"
flock 9
if [[ ! -f "$dir/manifest.json" ]]; then
  log "exporting the PyTorch fixtures into $dir (a few minutes, once per exporter version)"
  tmp="$dir.tmp.$$"
  rm -rf "$tmp"
  start=$SECONDS
  "${python[@]}" "$here/export.py" "$tmp" >&2
  mv "$tmp" "$dir"
  log "exported the PyTorch fixtures in $((SECONDS - start)) s"
fi
echo "$dir"
