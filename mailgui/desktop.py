"""``mailgui --install-desktop``: put mailgui in the desktop menu of the current user.

Writes, under ``$XDG_DATA_HOME`` (``~/.local/share``):

* ``applications/mailgui.desktop`` with an absolute ``Exec`` (a venv's or a bundle's
  ``mailgui`` is rarely on the PATH the desktop starts programs with),
* ``icons/hicolor/scalable/apps/mailgui.svg``,
* ``metainfo/io.github.mailcore.mailgui.metainfo.xml`` (software centres read it),

then refreshes the desktop database when ``update-desktop-database`` is there (it makes the
``message/rfc822`` association: .eml files open in mailgui). No Qt here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from mailgui.model.paths import RESOURCE_DIRS, atomic_write_bytes

__all__ = ["install_desktop", "launcher_command", "resources_dir"]

METAINFO = "io.github.mailcore.mailgui.metainfo.xml"


def resources_dir() -> Path:
    for folder in RESOURCE_DIRS:
        if (folder / "mailgui.desktop").is_file():
            return folder
    raise FileNotFoundError("mailgui's resources (mailgui.desktop, icons) are not installed")


def _quote(arg: str) -> str:
    """An Exec argument, quoted as the Desktop Entry Specification wants when needed."""
    if arg and not any(c in arg for c in ' \t\n"\'\\><~|&;$*?#()`%'):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace(
        "$", "\\$")
    return f'"{escaped}"'.replace("%", "%%")


def launcher_command() -> list[str]:
    """How to start this very mailgui from a desktop menu."""
    if getattr(sys, "frozen", False):  # the bundle: its own executable
        return [str(Path(sys.executable).resolve())]
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "mailgui" and script.exists():
        return [str(script.resolve())]
    found = shutil.which("mailgui", path=str(Path(sys.executable).parent))
    if found:
        return [found]
    return [str(Path(sys.executable).resolve()), "-m", "mailgui"]


def install_desktop(data_home: Path | None = None,
                    command: list[str] | None = None) -> list[Path]:
    """Install the desktop entry, icon and metainfo; return the files written."""
    if data_home is None:
        data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    source = resources_dir()
    exec_line = " ".join(_quote(a) for a in (command or launcher_command()))
    lines = []
    for line in (source / "mailgui.desktop").read_text(encoding="utf-8").splitlines():
        if line.startswith("Exec="):
            line = f"Exec={exec_line} %f"
        lines.append(line)
    entry = data_home / "applications" / "mailgui.desktop"
    icon = data_home / "icons" / "hicolor" / "scalable" / "apps" / "mailgui.svg"
    metainfo = data_home / "metainfo" / METAINFO
    atomic_write_bytes(entry, ("\n".join(lines) + "\n").encode("utf-8"))
    atomic_write_bytes(icon, (source / "icons" / "mailgui.svg").read_bytes())
    atomic_write_bytes(metainfo, (source / METAINFO).read_bytes())
    tool = shutil.which("update-desktop-database")
    if tool:
        subprocess.run([tool, str(entry.parent)], check=False, capture_output=True,  # noqa: S603
                       timeout=60)
    return [entry, icon, metainfo]
