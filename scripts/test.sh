#!/usr/bin/env bash
# Set everything up (Debian packages, .venv, the test packages) and run the whole test suite:
# ruff, then pytest inside scripts/sandbox.sh (a throwaway HOME and a real
# gnome-keyring on a private D-Bus). Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh --test
VENV="${MAILCORE_VENV:-$ROOT/.venv}"
echo "== ruff" >&2
"$VENV/bin/ruff" check mailcore mailgui tests bench scripts
echo "== pytest" >&2
bash scripts/sandbox.sh python -m pytest -p no:cacheprovider "$@"
