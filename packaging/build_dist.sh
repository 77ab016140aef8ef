#!/usr/bin/env bash
# Build the wheel and the sdist into DIR (default: dist/).
#   packaging/build_dist.sh [DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(realpath -m "${1:-$ROOT/dist}")"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
cd "$ROOT"
"$PY" -m pip show build >/dev/null 2>&1 || "$PY" -m pip install -q build
# Build from a copy of the files git tracks (as they are in the working tree), so that
# nothing else lying in the checkout leaks into the wheel; a failed copy stops the build.
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
while IFS= read -r -d '' file; do
  if [[ -e "$file" ]]; then  # (a tracked file deleted in the working tree is left out)
    cp --parents -- "$file" "$WORK"
  fi
done < <(git ls-files -z --cached)
"$PY" -m build --outdir "$OUT" "$WORK" >"$WORK.log" 2>&1 || { cat "$WORK.log" >&2; exit 1; }
rm -f "$WORK.log"
ls -1 "$OUT"/mailcore-*
