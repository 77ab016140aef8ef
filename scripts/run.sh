#!/usr/bin/env bash
# Set everything up (Debian packages, .venv), then start the composer.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
VENV="${MAILCORE_VENV:-$ROOT/.venv}"
# Until the composer window lands: a demonstration message through the console backend.
exec "$VENV/bin/python" -c '
import mailcore
mailcore.send_mail("Hello from mailcore", "This message went through the console backend.",
                   "demo@example.com", ["you@example.com"],
                   connection=mailcore.get_connection("console"))
'
