"""Where file dialogs open: the folder last used in one of them, else the home folder (never
the folder mailgui happened to be started from, which may be a source tree)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["remember", "start_at"]

_last = ""


def start_at(name: str = "") -> str:
    """The folder to open a dialog in, with ``name`` as the suggested file name."""
    folder = _last if _last and Path(_last).is_dir() else str(Path.home())
    return str(Path(folder) / name) if name else folder


def remember(*paths: str) -> None:
    """Note the folder of the file(s) the person just chose."""
    global _last
    for path in paths:
        if path:
            p = Path(path)
            _last = str(p if p.is_dir() else p.parent)
