#!/usr/bin/env bash
# Set everything up (Debian packages, .venv) and run the whole test suite:
# ruff, then pytest with a real Secret Service keyring (gnome-keyring) on a
# private D-Bus session, under a throwaway HOME so that no test ever touches
# your own keyring, config or drafts. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
VENV="${MAILCORE_VENV:-$ROOT/.venv}"
export PATH="$VENV/bin:$PATH"

echo "== ruff" >&2
ruff check mailcore mailgui tests bench scripts

SANDBOX="$(mktemp -d /tmp/mailcore-tests.XXXXXX)"
trap 'rm -rf "$SANDBOX"' EXIT
mkdir -p "$SANDBOX"/{home,config,data,cache,runtime}
chmod 700 "$SANDBOX/runtime"
export HOME="$SANDBOX/home" XDG_CONFIG_HOME="$SANDBOX/config" XDG_DATA_HOME="$SANDBOX/data"
export XDG_CACHE_HOME="$SANDBOX/cache" XDG_RUNTIME_DIR="$SANDBOX/runtime"
export QT_QPA_PLATFORM=offscreen PYTHONDONTWRITEBYTECODE=1
export MAILCORE_TEST_KEYRING=secret-service

echo "== pytest" >&2
# The keyring daemon is unlocked with a throwaway password on a private bus.
exec dbus-run-session -- bash -c '
  set -e
  eval "$(printf "test-keyring" | gnome-keyring-daemon --unlock --components=secrets)"
  export GNOME_KEYRING_CONTROL
  python -m pytest -p no:cacheprovider "$@"
' pytest "$@"
