#!/usr/bin/env bash
# Build the wheel and the sdist into DIR (default: dist/).
#   packaging/build_dist.sh [DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(realpath -m "${1:-$ROOT/dist}")"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
cd "$ROOT"
"$PY" -m pip show build >/dev/null 2>&1 || "$PY" -m pip install -q build
# Build from a clean copy of the tracked files, so that nothing local leaks in.
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents {} "$WORK" 2>/dev/null || true
"$PY" -m build --outdir "$OUT" "$WORK" >"$WORK.log" 2>&1 || { cat "$WORK.log" >&2; exit 1; }
rm -f "$WORK.log"
ls -1 "$OUT"/mailcore-*
