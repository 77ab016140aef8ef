#!/usr/bin/env bash
# Refresh the vendored caniemail.com data set that `mailcore check` (the "clients" check) uses.
#
#   scripts/refresh_caniemail.sh            # the newest release of the npm package `caniemail`
#   scripts/refresh_caniemail.sh 1.0.5      # a given version
#   CANIEMAIL_PACKAGE_DIR=/tmp/cie/package scripts/refresh_caniemail.sh
#                                           # an already unpacked package (no network)
#
# This is the only part of the check that touches the network: it runs `npm pack caniemail`
# (the npm registry) in a temporary directory, copies data/caniemail.json and the package's
# LICENSE (MIT) into mailcore/checks/data/, and records the version in its README.md. It fails
# loudly (non-zero exit, a sentence on stderr) when npm is missing, the download fails, or the
# package does not hold what the check reads; nothing is replaced then.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/mailcore/checks/data"
SPEC="caniemail${1:+@$1}"

die() { printf 'refresh_caniemail: %s\n' "$*" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/caniemail.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

if [[ -n "${CANIEMAIL_PACKAGE_DIR:-}" ]]; then
  [[ -d "$CANIEMAIL_PACKAGE_DIR" ]] || die "CANIEMAIL_PACKAGE_DIR=$CANIEMAIL_PACKAGE_DIR is not a folder"
  PKG="$CANIEMAIL_PACKAGE_DIR"
else
  command -v npm >/dev/null || die "npm is not installed (Debian: apt-get install npm)"
  (cd "$WORK" && npm pack --silent "$SPEC" >"$WORK/pack.out") \
    || die "npm pack $SPEC failed (no network, or no such version?)"
  TARBALL="$WORK/$(tail -n 1 "$WORK/pack.out")"
  [[ -f "$TARBALL" ]] || die "npm pack did not leave a tarball (it said: $(cat "$WORK/pack.out"))"
  tar -xzf "$TARBALL" -C "$WORK" || die "cannot unpack $TARBALL"
  PKG="$WORK/package"
fi

for f in package.json LICENSE data/caniemail.json; do
  [[ -f "$PKG/$f" ]] || die "the package has no $f; the layout changed, look at $PKG"
done

PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[[ -x "$PYTHON" ]] || PYTHON="$(command -v python3)" || die "python3 is needed to read the package"

# The version, and a sanity check that the JSON has the shape the check reads.
VERSION="$("$PYTHON" - "$PKG" <<'EOF'
import json, sys
pkg = sys.argv[1]
meta = json.load(open(f"{pkg}/package.json", encoding="utf-8"))
data = json.load(open(f"{pkg}/data/caniemail.json", encoding="utf-8"))
if meta.get("name") != "caniemail":
    sys.exit(f"package.json names {meta.get('name')!r}, not 'caniemail'")
if meta.get("license") != "MIT":
    sys.exit(f"the licence is now {meta.get('license')!r}, not MIT: read it before vendoring")
features = data.get("data")
if not isinstance(features, list) or not features:
    sys.exit("data/caniemail.json has no 'data' list")
for key in ("slug", "title", "category", "url", "stats"):
    if any(key not in f for f in features):
        sys.exit(f"a feature in data/caniemail.json has no {key!r}")
if "family" not in data.get("nicenames", {}):
    sys.exit("data/caniemail.json has no nicenames.family")
print(meta["version"])
EOF
)" || die "the package does not look like the caniemail data set (see above)"

UPDATED="$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["last_update_date"])' \
  "$PKG/data/caniemail.json")"

README="$DEST/README.md"
[[ -f "$README" ]] && grep -q '^Version: ' "$README" \
  || die "$README has no 'Version:' line to record $VERSION in; restore it from git"

cp "$PKG/data/caniemail.json" "$DEST/caniemail.json.new"
cp "$PKG/LICENSE" "$DEST/CANIEMAIL-LICENSE.new"
mv "$DEST/caniemail.json.new" "$DEST/caniemail.json"
mv "$DEST/CANIEMAIL-LICENSE.new" "$DEST/CANIEMAIL-LICENSE"

sed -i -e "s/^Version: .*/Version: $VERSION/" -e "s/^Data updated: .*/Data updated: $UPDATED/" \
  "$README"

printf 'caniemail %s (data of %s) is now in %s\n' "$VERSION" "$UPDATED" "$DEST"
