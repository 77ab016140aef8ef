#!/usr/bin/env bash
# Set up what the app needs (Debian packages, .venv; nothing for the tests), then start the
# composer.
# Extra arguments go to mailgui (try --help).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Stay in the caller's folder: "run.sh message.eml" and the file dialogs mean the caller's files.
bash "$ROOT/scripts/bootstrap.sh"
VENV="${MAILCORE_VENV:-$ROOT/.venv}"
if [[ -z "${DISPLAY:-}" && -z "${WAYLAND_DISPLAY:-}" ]]; then
  cat >&2 <<'MSG'
run: this machine has no display ($DISPLAY and $WAYLAND_DISPLAY are empty), so
the composer starts on a virtual screen (Xvfb) where you can't see it. Its
local test inbox still works. Run this on a desktop, or with ssh -X, to see the
window. Ctrl+C stops it.
MSG
  exec xvfb-run -a -s "-screen 0 1280x800x24" "$VENV/bin/python" -m mailgui "$@"
fi
exec "$VENV/bin/python" -m mailgui "$@"
