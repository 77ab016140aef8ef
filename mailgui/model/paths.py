"""Where mailgui keeps its files. Injectable, so tests (and the screenshot script) use tmp dirs."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["AppPaths", "atomic_write_bytes", "atomic_write_json", "read_json"]


@dataclass(frozen=True)
class AppPaths:
    config_dir: Path  # profiles.json, settings.json (never a secret)
    data_dir: Path  # drafts, sent log, local inbox, file-backend output

    @classmethod
    def default(cls) -> AppPaths:
        import platformdirs

        return cls(
            Path(platformdirs.user_config_dir("mailgui", appauthor=False)),
            Path(platformdirs.user_data_dir("mailgui", appauthor=False)),
        )

    @classmethod
    def under(cls, root: str | os.PathLike[str]) -> AppPaths:
        root = Path(root)
        return cls(root / "config", root / "data")

    @property
    def profiles_file(self) -> Path:
        return self.config_dir / "profiles.json"

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.json"

    @property
    def drafts_dir(self) -> Path:
        return self.data_dir / "drafts"

    @property
    def sent_log_file(self) -> Path:
        return self.data_dir / "sent.jsonl"

    @property
    def inbox_dir(self) -> Path:
        return self.data_dir / "inbox"

    @property
    def file_backend_dir(self) -> Path:
        return self.data_dir / "file-backend"


# Where the app's resources (icons, the desktop entry, the metainfo) are: packaged inside
# mailgui (the wheel, the bundle), else in the checkout.
RESOURCE_DIRS = [
    Path(__file__).resolve().parents[1] / "resources",
    Path(__file__).resolve().parents[2] / "resources",
]


def atomic_write_chunks(path: Path, chunks: Iterable[bytes]) -> int:
    """Write ``chunks`` to ``path`` so that a crash leaves the old file or the new one, never
    half; return the number of bytes written.

    A temp file in the same folder, fsync, then ``os.replace``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    written = 0
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
                written += len(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return written


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_write_chunks``)."""
    atomic_write_chunks(path, (data,))


def atomic_write_json(path: Path, obj: Any, *, compact: bool = False) -> None:
    """``obj`` as JSON: indented for people, or ``compact`` (ASCII, one line) for big files
    only programs read (it also carries lone surrogates from undecodable mail headers)."""
    if compact:
        atomic_write_bytes(path, json.dumps(obj).encode("ascii"))
    else:
        atomic_write_bytes(path, json.dumps(obj, indent=2, ensure_ascii=False).encode("utf-8")
                           + b"\n")


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON in ``path``, or ``default`` when it is missing or unreadable/corrupt."""
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return default
