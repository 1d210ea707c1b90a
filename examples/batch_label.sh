#!/usr/bin/env bash
# Label a directory of generated files overnight: all cores, progress bar, resumable.
#   examples/batch_label.sh generated/ labeled/
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="${1:?source directory}"; out="${2:?output directory}"
[ -f "$here/keys/labeler.pem" ] || labeler keygen --out "$here/keys"
labeler --config "$here/labeler.toml" apply "$src" --out "$out"            # re-run to resume after a crash
labeler verify --trust "$here/keys/labeler.pub.pem" --require verified "$out" > /dev/null && echo "all verified"
