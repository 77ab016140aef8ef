#!/usr/bin/env bash
# The benchmark command: install what is needed (idempotently), then
# run every benchmark side by side with Django 5.2, raw smtplib and Postfix's
# smtp-source, and write bench/results/latest.md and latest.png.
#
#   bash bench/run.sh            the full run (a few minutes)
#   bash bench/run.sh --quick    a small smoke run (well under a minute); writes
#                                bench/results/raw/quick.md and quick.png instead
#
# Other arguments go to bench/run.py (--only compose,mass,large,gui; --out DIR).
# This is a report: it exits 0 whatever the figures are.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${MAILCORE_VENV:-$ROOT/.venv}"

SUDO=""
[[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null && SUDO="sudo"

# Postfix only for its test tools smtp-sink and smtp-source; answer its
# configuration question so that nothing is asked and no mail system is set up.
have_postfix() {
  dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q "install ok installed"
}
if command -v dpkg-query >/dev/null && ! have_postfix; then
  echo "bench: installing postfix (for smtp-sink and smtp-source)" >&2
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  { $SUDO apt-get update -qq &&
    $SUDO apt-get install -y -qq --no-install-recommends postfix >/dev/null; } ||
    echo "bench: could not install postfix; the smtp-sink/smtp-source columns will be empty" >&2
fi

# The venv with the bench extra (Django, aiosmtpd) and the GUI packages.
BOOTSTRAP_BENCH=1 bash scripts/bootstrap.sh

exec "$VENV/bin/python" "$ROOT/bench/run.py" "$@"
