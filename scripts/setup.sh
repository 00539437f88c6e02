#!/usr/bin/env bash
# Set up a fresh machine: a virtual environment with the pinned requirements and this package (so `.venv/bin/landmark`
# works), and (as root) Debian's Chromium + ChromeDriver for the browser test and ExifTool, which the geotag tests
# read sidecars back with (the reader Immich and PhotoPrism use). Safe to run again: it only installs
# what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements.txt
# The package itself, editable (the dependencies came from requirements.txt above).
if ! .venv/bin/python -c "import landmark_lib, pathlib, sys; sys.exit(pathlib.Path(landmark_lib.__file__).parent != pathlib.Path('landmark_lib').resolve())" 2>/dev/null \
  || [ ! -x .venv/bin/landmark ]; then
  .venv/bin/python -m pip install --quiet --no-deps -e .
fi
if [ "$(id -u)" = "0" ] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
    || echo "note: could not install chromium; the browser test will be skipped" >&2
fi
if [ "$(id -u)" = "0" ] && ! command -v exiftool >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libimage-exiftool-perl >/dev/null) \
    || echo "note: could not install exiftool; the geotag read-back tests will be skipped" >&2
fi
