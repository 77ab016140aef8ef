"""Copy the licence texts of mailcore and of every Python distribution a bundle carries into
BUNDLE/licenses/ (one folder each), and Python's own. Usage: collect_licenses.py BUNDLE"""

from __future__ import annotations

import re
import shutil
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMON = Path("/usr/share/common-licenses")
LICENCE_FILE = re.compile(r"(LICEN[CS]E|COPYING|NOTICE|AUTHORS)", re.I)


def carried() -> list[str]:
    """What the bundle holds (mailgui.spec): the distributions mailcore's ``gui`` extra needs,
    and theirs, as installed here (read from their metadata, so the list can't drift)."""
    from packaging.requirements import Requirement

    found: list[str] = []
    todo = [(r, "gui") for r in metadata.requires("mailcore") or []]
    while todo:
        line, extra = todo.pop()
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue  # not installed here: not in the bundle either
        name = dist.metadata["Name"]
        if name not in found:
            found.append(name)
            todo += [(r, "") for r in dist.requires or []]
    return found


def main(bundle: Path) -> int:
    out = bundle / "licenses"
    shutil.rmtree(out, ignore_errors=True)
    (out / "mailcore").mkdir(parents=True)
    shutil.copy(ROOT / "LICENSE", out / "mailcore" / "LICENSE")
    shutil.copy(ROOT / "resources" / "icons" / "LICENSE.md", out / "mailcore" / "ICONS.md")
    python_licence = Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt"
    if python_licence.is_file():
        (out / "Python").mkdir()
        shutil.copy(python_licence, out / "Python" / "LICENSE.txt")
    missing = []
    for name in carried():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        files = [Path(str(f.locate())) for f in dist.files or [] if LICENCE_FILE.search(f.name)]
        declared = dist.metadata.get("License-Expression") or dist.metadata.get("License") or ""
        if not files and "LGPL-3.0" in declared:
            # PySide6's wheels carry no licence text: the LGPL v3 (and the GPL v3 it builds
            # on) from Debian's base-files
            files = [p for p in (COMMON / "LGPL-3", COMMON / "GPL-3") if p.is_file()]
        if not files:
            missing.append(f"{name} ({declared or 'see its page'})")
            continue
        folder = out / dist.metadata["Name"]
        folder.mkdir(exist_ok=True)
        if declared:
            (folder / "LICENSE-EXPRESSION.txt").write_text(declared + "\n")
        for f in files:
            shutil.copy(f, folder / f.name)
    note = ["Licences of the software in this bundle, one folder each.",
            "PySide6 and Qt are used under the GNU LGPL v3 (licenses/PySide6_Essentials and",
            "licenses/PySide6_Addons); their source is at https://code.qt.io. Qt WebEngine,",
            "which renders the HTML previews, contains Chromium, whose third-party licences",
            "Qt lists in its documentation (Qt WebEngine, Third-Party Code)."]
    if missing:
        note += ["", "Without a licence file in their package (see their PyPI pages):",
                 *missing]
    (out / "README.txt").write_text("\n".join(note) + "\n")
    print(f"licences: {len(list(out.iterdir())) - 1} folders in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
