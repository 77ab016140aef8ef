#!/usr/bin/env bash
# Build the wheel and the sdist into DIR (default: dist/).
#   packaging/build_dist.sh [DIR]
# From a git checkout the build starts from a copy of the files git tracks (as they are in the
# working tree), so nothing else lying in the checkout leaks into the wheel. From a source
# archive that is not a git checkout (an unpacked sdist, a tarball of the tree) it starts from
# the files the sdist manifest names (MANIFEST.in and pyproject.toml).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(realpath -m "${1:-$ROOT/dist}")"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
cd "$ROOT"
"$PY" -m pip show build >/dev/null 2>&1 || "$PY" -m pip install -q build
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/src"

if [[ -e "$ROOT/.git" ]]; then
  if ! command -v git >/dev/null; then
    echo "build_dist: $ROOT is a git checkout but git is not installed (apt install git)" >&2
    exit 1
  fi
  # The list is written to a file first: a failing git inside "< <(...)" would go unseen.
  if ! git -C "$ROOT" ls-files -z --cached >"$WORK/files" 2>"$WORK/git.log"; then
    echo "build_dist: git ls-files failed in $ROOT:" >&2
    cat "$WORK/git.log" >&2
    exit 1
  fi
  while IFS= read -r -d '' file; do
    if [[ -e "$file" ]]; then  # (a tracked file deleted in the working tree is left out)
      cp --parents -- "$file" "$WORK/src"
    fi
  done <"$WORK/files"
  what="the files git tracks"
else
  # No git: let setuptools list what the sdist holds, and build from that sdist's files.
  if ! "$PY" -m build --sdist --outdir "$WORK/sdist" "$ROOT" >"$WORK/sdist.log" 2>&1; then
    cat "$WORK/sdist.log" >&2
    echo "build_dist: $ROOT is not a git checkout, and building an sdist from it failed" >&2
    exit 1
  fi
  tar -xzf "$WORK"/sdist/mailcore-*.tar.gz -C "$WORK/src" --strip-components=1
  what="the files the sdist manifest names (not a git checkout)"
fi
if [[ ! -f "$WORK/src/pyproject.toml" ]]; then
  echo "build_dist: no pyproject.toml among $what: nothing to build" >&2
  exit 1
fi
"$PY" -m build --outdir "$OUT" "$WORK/src" >"$WORK/build.log" 2>&1 || {
  cat "$WORK/build.log" >&2
  echo "build_dist: building from $what failed (log above)" >&2
  exit 1
}
ls -1 "$OUT"/mailcore-*
