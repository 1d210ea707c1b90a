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

# Debian packages every test relies on, each checked by package (not by command), so a machine
# that has a tool but lacks a Recommends we use still gets it:
# - libimage-exiftool-perl: exiftool, an outside reader of our labels; libarchive-zip-perl (its
#   Recommends) lets it read DOCX/XLSX/PPTX, libunicode-linebreak-perl (the other Recommends)
#   keeps its text output as upstream intends;
# - libexempi8: Adobe's XMP toolkit (exempi), read through python-xmp-toolkit as the TC260
#   guides' reference code does;
# - poppler-utils: pdftoppm renders labelled PDF pages;
# - openssl: the command is the outside judge of our SM2 signatures (minimal images lack it);
# - ffmpeg: video/compressed-audio explicit labels, and ffprobe, an outside reader of AV tags;
# - chromium + chromium-driver: the browser tests.
packages=(libimage-exiftool-perl libarchive-zip-perl libunicode-linebreak-perl libexempi8 poppler-utils openssl)
[ "${LABELER_SKIP_FFMPEG:-0}" = 1 ] || packages+=(ffmpeg)
[ "${LABELER_SKIP_BROWSER:-0}" = 1 ] || packages+=(chromium chromium-driver)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed || missing+=("$pkg")
done
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
echo "setup: installing aigc-labeler[${EXTRAS:-dev,server,c2pa,media,interop}] (editable)"
.venv/bin/python -m pip install -q -e ".[${EXTRAS:-dev,server,c2pa,media,interop}]"
.venv/bin/python -c "import labeler; print('setup: labeler', labeler.__version__, 'ready')"
