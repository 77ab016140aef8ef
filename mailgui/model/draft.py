"""The message being written, and where it is kept between sessions."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

from mailcore.conf import settings
from mailcore.message import make_msgid
from mailgui.model.paths import AppPaths, atomic_write_json, read_json

__all__ = ["AttachmentRef", "Draft", "DraftStore", "new_date", "new_message_id", "safe_filename"]


def new_message_id() -> str:
    """A fresh Message-ID, pinned on the draft so the preview and the sent message share it."""
    return make_msgid(domain="mailgui.localhost")


def new_date() -> str:
    """The Date header for now, as mailcore would write it; pinned on the draft like the
    Message-ID (and set again to the time of sending when the draft is sent)."""
    return formatdate(localtime=settings.EMAIL_USE_LOCALTIME)


@dataclass
class AttachmentRef:
    """An attachment by reference: the file is read only when the message is written."""

    path: str
    mimetype: str = ""  # "" means "guess from the file name", as mailcore does

    @property
    def name(self) -> str:
        return Path(self.path).name


@dataclass
class Draft:
    """Everything the composer holds. Address fields are kept as typed (comma separated)."""

    from_email: str = ""
    to: str = ""
    cc: str = ""
    bcc: str = ""
    reply_to: str = ""
    subject: str = ""
    body: str = ""
    html: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    attachments: list[AttachmentRef] = field(default_factory=list)
    profile_id: str = ""
    message_id: str = field(default_factory=new_message_id)
    date: str = field(default_factory=new_date)  # "" = let mailcore date it when written
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    saved_at: float = 0.0

    def copy(self) -> Draft:
        return copy.deepcopy(self)

    def renew(self) -> None:
        """Make the next send a new message: a new Message-ID (hence new multipart
        boundaries) and Date."""
        self.message_id = new_message_id()
        self.date = new_date()

    @property
    def is_empty(self) -> bool:
        return not any(
            (self.to, self.cc, self.bcc, self.reply_to, self.subject, self.body.strip(),
             self.html.strip(), self.headers, self.attachments)
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["headers"] = [list(h) for h in self.headers]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Draft:
        d = cls()
        for name in ("from_email", "to", "cc", "bcc", "reply_to", "subject", "body", "html",
                     "profile_id", "message_id", "date", "id"):
            value = data.get(name)
            if isinstance(value, str):
                setattr(d, name, value)
        d.saved_at = float(data.get("saved_at") or 0.0)
        d.headers = [
            (str(h[0]), str(h[1])) for h in data.get("headers") or []
            if isinstance(h, list | tuple) and len(h) == 2
        ]
        d.attachments = [
            AttachmentRef(str(a.get("path", "")), str(a.get("mimetype", "")))
            for a in data.get("attachments") or [] if isinstance(a, dict) and a.get("path")
        ]
        return d

    def fingerprint(self) -> str:
        """Changes whenever the content changes (not when only ``saved_at`` does)."""
        data = self.to_dict()
        data.pop("saved_at", None)
        return hashlib.sha1(  # noqa: S324 - a change detector, not security
            json.dumps(data, sort_keys=True).encode("utf-8")
        ).hexdigest()


_UNSAFE = re.compile(r"[^\w.\- ()\[\]+@=,]+", re.UNICODE)


def safe_filename(name: str, fallback: str = "attachment") -> str:
    """A file name that is safe to create in a folder (no path parts, no control chars)."""
    name = Path(name.replace("\\", "/")).name
    name = _UNSAFE.sub("_", name).strip(". ")
    return name[:150] or fallback


class DraftStore:
    """The current draft in ``drafts/current.json``, written atomically.

    ``save`` may be called from a worker thread; a write of an older generation never replaces a
    newer one.
    """

    def __init__(self, paths: AppPaths) -> None:
        self.paths = paths
        self._lock = threading.Lock()
        self._written_generation = -1

    @property
    def path(self) -> Path:
        return self.paths.drafts_dir / "current.json"

    def attachments_dir(self, draft_id: str) -> Path:
        """Where attachments of a draft opened from an .eml file are saved."""
        return self.paths.drafts_dir / "attachments" / safe_filename(draft_id)

    def save(self, draft: Draft, generation: int | None = None) -> bool:
        """Write ``draft``; False if a newer generation was already written."""
        with self._lock:
            if generation is not None:
                if generation < self._written_generation:
                    return False
                self._written_generation = generation
            data = draft.to_dict()
            data["saved_at"] = time.time()
            atomic_write_json(self.path, {"version": 1, "draft": data})
            draft.saved_at = data["saved_at"]
            return True

    def load(self) -> Draft | None:
        return self.load_file(self.path)

    @staticmethod
    def load_file(path: Path) -> Draft | None:
        """A draft file written by ``save`` or ``save_copy``; None if it is not one."""
        data = read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("draft"), dict):
            return None
        try:
            return Draft.from_dict(data["draft"])
        except (TypeError, ValueError):
            return None

    def save_copy(self, draft: Draft) -> Path:
        """Keep ``draft`` in a new numbered file next to the current one
        (``drafts/kept-draft-N.json``), never replacing a file; its path. File > Open opens
        it again."""
        folder = self.paths.drafts_dir
        folder.mkdir(parents=True, exist_ok=True)
        data = draft.to_dict()
        data["saved_at"] = time.time()
        payload = json.dumps({"version": 1, "draft": data}, indent=2, ensure_ascii=False)
        fd, tmp = tempfile.mkstemp(prefix=".kept-draft.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(payload.encode("utf-8") + b"\n")
                f.flush()
                os.fsync(f.fileno())
            for n in range(1, 100000):
                target = folder / f"kept-draft-{n}.json"
                try:
                    os.link(tmp, target)  # fails if it exists: never replaces a kept draft
                except FileExistsError:
                    continue
                except OSError:  # no hard links on this file system
                    try:
                        with open(target, "xb") as f:
                            f.write(payload.encode("utf-8") + b"\n")
                            f.flush()
                            os.fsync(f.fileno())
                    except FileExistsError:
                        continue
                return target
            raise FileExistsError(f"too many kept drafts in {folder}")
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def discard(self) -> None:
        with self._lock:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
