#!/usr/bin/env bash
# Set up a fresh machine for labeler: exiftool (Debian), a venv in .venv, the package + extras.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# exiftool: an independent reader of our labels; ffmpeg: video/compressed-audio explicit labels
# and ffprobe, an independent reader of audio/video tags; chromium + its driver: the browser test;
# poppler-utils: pdftoppm renders labelled PDF pages for the tests.
missing=()
command -v exiftool >/dev/null 2>&1 || missing+=(libimage-exiftool-perl)
command -v pdftoppm >/dev/null 2>&1 || missing+=(poppler-utils)
if [ "${LABELER_SKIP_FFMPEG:-0}" != 1 ]; then
  command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
fi
if [ "${LABELER_SKIP_BROWSER:-0}" != 1 ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} (Debian)"
  apt_install "${missing[@]}"
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
echo "setup: installing aigc-labeler[${EXTRAS:-dev,server,c2pa,media}] (editable)"
.venv/bin/python -m pip install -q -e ".[${EXTRAS:-dev,server,c2pa,media}]"
.venv/bin/python -c "import labeler; print('setup: labeler', labeler.__version__, 'ready')"
