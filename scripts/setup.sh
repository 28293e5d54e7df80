#!/usr/bin/env bash
# Set up microfactory on a fresh machine: the system libraries Qt needs, then a virtualenv in .venv with
# the project and its test tools. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Qt (PyQt6) needs these shared libraries even offscreen; xvfb gives a real X screen for screenshots.
APT_PACKAGES=(libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libglib2.0-0
              libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 libxcb-randr0
              libxcb-render-util0 libxcb-image0 xvfb xauth
              poppler-utils  # pdftotext/pdftoppm: the lot-report PDF test reads the PDF back
              mosquitto      # the MQTT broker the Sparkplug B tests start on a free localhost port
              postgresql)    # the shop store's tests start their own server (initdb, postgres)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing system packages (install them, e.g. sudo apt-get install ${missing[*]})" >&2
  fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.microfactory-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  log=$(mktemp)
  if ! { .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -e '.[test]'; } \
       >"$log" 2>&1; then
    grep -v "^WARNING: Location" "$log" >&2
    echo "setup: pip install failed (see above)" >&2
    exit 1
  fi
  rm -f "$log"
  .venv/bin/python -c "import microfactory, serial, cv2, PyQt6, transitions"
  touch "$stamp"
fi
