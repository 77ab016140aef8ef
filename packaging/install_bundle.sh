#!/usr/bin/env bash
# Install a mailgui bundle (built by packaging/build_bundle.sh) for the current user:
#   ~/.local/opt/mailgui/        the bundle (replaced if there is one)
#   ~/.local/bin/mailgui, mailcore   the commands
#   the desktop menu entry, icon and metainfo under ~/.local/share (mailgui --install-desktop)
# Usage: install_bundle.sh [BUNDLE_DIR]   (default: the folder this script is in, as the
# bundle ships it as install.sh, else dist/bundle/mailgui)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ $# -ge 1 ]]; then
  SRC="$(cd "$1" && pwd)"
elif [[ -x "$HERE/mailgui" && -x "$HERE/mailcore" ]]; then
  SRC="$HERE"
else
  SRC="$(cd "$HERE/../dist/bundle/mailgui" && pwd)"
fi
[[ -x "$SRC/mailgui" ]] || { echo "install_bundle: no mailgui bundle in $SRC" >&2; exit 2; }
DEST="${MAILGUI_INSTALL_DIR:-$HOME/.local/opt/mailgui}"
BIN="${MAILGUI_BIN_DIR:-$HOME/.local/bin}"
mkdir -p "$(dirname "$DEST")" "$BIN"
if [[ "$SRC" != "$DEST" ]]; then
  rm -rf "$DEST.new"
  cp -a "$SRC" "$DEST.new"
  rm -rf "$DEST"
  mv "$DEST.new" "$DEST"
fi
ln -sfn "$DEST/mailgui" "$BIN/mailgui"
ln -sfn "$DEST/mailcore" "$BIN/mailcore"
"$DEST/mailgui" --install-desktop
echo "installed: $DEST ($BIN/mailgui, $BIN/mailcore)"
case ":$PATH:" in *":$BIN:"*) ;; *) echo "note: $BIN is not on your PATH" >&2 ;; esac
