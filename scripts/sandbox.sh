#!/usr/bin/env bash
# Run a command as the tests run: a throwaway HOME and XDG folders, Qt
# offscreen, and a real Secret Service keyring (gnome-keyring, unlocked with a
# throwaway password) on a private D-Bus session. Nothing touches your own
# keyring, config or drafts.   Usage: scripts/sandbox.sh COMMAND [ARGS...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MAILCORE_VENV:-$ROOT/.venv}"
export PATH="$VENV/bin:$PATH"
# Packaging tests install into clean venvs: let them reuse the real pip cache.
export MAILCORE_PIP_CACHE="${PIP_CACHE_DIR:-${HOME:-/root}/.cache/pip}"
SANDBOX="$(mktemp -d /tmp/mailcore-sandbox.XXXXXX)"
trap 'rm -rf "$SANDBOX"' EXIT
mkdir -p "$SANDBOX"/{home,config,data,cache,runtime}
chmod 700 "$SANDBOX/runtime"
export HOME="$SANDBOX/home" XDG_CONFIG_HOME="$SANDBOX/config" XDG_DATA_HOME="$SANDBOX/data"
export XDG_CACHE_HOME="$SANDBOX/cache" XDG_RUNTIME_DIR="$SANDBOX/runtime"
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}" PYTHONDONTWRITEBYTECODE=1
export MAILCORE_TEST_KEYRING=secret-service
dbus-run-session -- bash -c '
  set -e
  eval "$(printf "throwaway" | gnome-keyring-daemon --unlock --components=secrets)"
  export GNOME_KEYRING_CONTROL
  "$@"
' sandbox "$@"
