#!/usr/bin/env bash
# Build a PyInstaller one-folder bundle: DIR/mailgui/{mailgui,mailcore,...}
# that runs on a Linux machine without Python or any Python package.
#   packaging/build_bundle.sh [DIR]      (default: dist/bundle)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(realpath -m "${1:-$ROOT/dist/bundle}")"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
cd "$ROOT"
"$PY" -m pip show pyinstaller >/dev/null 2>&1 || "$PY" -m pip install -q "pyinstaller>=6.3"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath "$OUT" --workpath "$WORK" packaging/mailgui.spec >"$WORK/log" 2>&1 \
  || { cat "$WORK/log" >&2; exit 1; }
# The desktop entry, icon and metainfo beside the programs, for a person or a packager to
# find (install.sh itself installs them with mailgui --install-desktop, from the bundle's
# own resources).
cp resources/mailgui.desktop resources/io.github.mailcore.mailgui.metainfo.xml "$OUT/mailgui/"
cp resources/icons/mailgui.svg "$OUT/mailgui/mailgui.svg"
# Licences: ours, and those of everything the bundle carries (Qt/PySide6 is LGPL-3.0).
"$PY" packaging/collect_licenses.py "$OUT/mailgui"
cp packaging/install_bundle.sh "$OUT/mailgui/install.sh"
du -sh "$OUT/mailgui" | cut -f1 | sed 's/^/bundle size: /'
echo "$OUT/mailgui/mailgui"
