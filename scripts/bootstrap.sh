#!/usr/bin/env bash
# Set up everything the project needs on a Debian machine, idempotently.
#   scripts/bootstrap.sh          runtime + test dependencies
#   BOOTSTRAP_BENCH=1 ...         also the benchmark extras (Python packages)
# Fast when everything is already there: apt is skipped when the packages are
# installed and pip is skipped when pyproject.toml has not changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${MAILCORE_VENV:-$ROOT/.venv}"

APT_PACKAGES=(
  # Qt offscreen and on X11 (xcb), fonts for readable windows
  libglib2.0-0 libgl1 libegl1 libfontconfig1 libxkbcommon0 libdbus-1-3
  xvfb xauth libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0
  libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0
  libxcb-xfixes0 libxcb-xkb1 libxcb-sync1 libxcb-shm0 libx11-xcb1
  fonts-dejavu-core
  # a real Secret Service keyring for the tests, on a private D-Bus
  dbus dbus-x11 gnome-keyring
  # unshare and ip: the test host in a private network namespace (tests/core)
  util-linux iproute2
  # objdump, which PyInstaller needs to build the bundle (tests/packaging)
  binutils
  # desktop-file-validate and update-desktop-database (mailgui --install-desktop)
  desktop-file-utils
)
# (postfix, for the benchmarks' smtp-sink, is installed by bench/run.sh, which goes on
# without it)
PY="${PYTHON:-python3}"
# Python with venv and pip (Debian splits them out of python3)
if ! command -v "$PY" >/dev/null || ! "$PY" -c "import ensurepip, venv" 2>/dev/null; then
  APT_PACKAGES+=(python3 python3-venv python3-pip)
fi

missing=()
if command -v dpkg-query >/dev/null; then
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if ((${#missing[@]})); then
  echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "bootstrap: creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
extras="gui,test"
[[ "${BOOTSTRAP_BENCH:-0}" == 1 ]] && extras="$extras,bench"
stamp="$VENV/.mailcore-installed"
want="$(cat pyproject.toml | sha256sum | cut -c1-16) $extras"
if [[ ! -f "$stamp" ]] || [[ "$(cat "$stamp")" != "$want" ]]; then
  echo "bootstrap: installing Python packages [$extras]" >&2
  log="$(mktemp)"
  if ! { "$VENV/bin/python" -m pip install --upgrade pip &&
         "$VENV/bin/python" -m pip install -e ".[$extras]"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "bootstrap: pip install failed (log above)" >&2
    exit 1
  fi
  rm -f "$log"
  echo "$want" > "$stamp"
fi

# Django's own mail test suite (from the Django sdist on PyPI), run against
# mailcore by tests/compat. Only tests/mail is kept.
DJANGO_TESTS="$VENV/django-mail-tests"
if [[ ! -f "$DJANGO_TESTS/.complete" ]]; then
  version="$("$VENV/bin/python" -c 'import django; print(django.__version__)')"
  tmp="$(mktemp -d)"
  echo "bootstrap: fetching Django $version's mail tests" >&2
  "$VENV/bin/python" -m pip download -q --no-deps --no-binary :all: "Django==$version" -d "$tmp" >/dev/null 2>&1
  rm -rf "$DJANGO_TESTS" && mkdir -p "$DJANGO_TESTS"
  tar -xzf "$tmp"/[Dd]jango-"$version".tar.gz -C "$tmp" --wildcards "*/tests/mail/*"
  mv "$tmp"/[Dd]jango-"$version"/tests/mail "$DJANGO_TESTS/mail"
  rm -rf "$tmp"
  touch "$DJANGO_TESTS/.complete"
fi
