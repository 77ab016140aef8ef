"""The message being written, and where it is kept between sessions."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
import unicodedata
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mailgui.model.paths import AppPaths, atomic_write_json, read_json

__all__ = [
    "DEFAULT_MSGID_DOMAIN",
    "LINE_BREAKS",  # noqa: F822 - made on first use (the module's __getattr__)
    "AttachmentRef",
    "Draft",
    "DraftStore",
    "clean_one_line",
    "message_id_domain",
    "new_date",
    "new_message_id",
    "one_line",
    "safe_filename",
    "unsendable_at",
    "unsendable_problem",
]


DEFAULT_MSGID_DOMAIN = "mailgui.localhost"  # when neither From nor the profile gives one
_DOMAIN = re.compile(r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
                     r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+")


def _domain_of(text: str) -> str:
    """The domain of the one address in ``text`` (``Name <a@b.example>`` too), as IDNA, or ""
    when there is none or it is not a usable domain name (a literal, a typo in progress)."""
    if not text or "@" not in text:
        return ""
    from email.utils import getaddresses  # (email.utils: after the first frame)

    try:
        pairs = getaddresses([text])
    except Exception:  # noqa: BLE001 - half-typed text: no domain yet
        return ""
    if len(pairs) != 1 or "@" not in pairs[0][1]:
        return ""
    domain = pairs[0][1].rsplit("@", 1)[1].strip().rstrip(".").lower()
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return ""
    return domain if _DOMAIN.fullmatch(domain) else ""


def message_id_domain(from_email: str = "", fallback: str = "") -> str:
    """The domain a draft's Message-ID is made with: the From address's, else ``fallback``
    (the profile's: its default From, else its DKIM domain), else ``DEFAULT_MSGID_DOMAIN``.
    Spam filters score IDs made with a name that is not a public domain."""
    return (_domain_of(from_email) or _domain_of(f"x@{fallback}" if fallback and "@" not in
                                                   fallback else fallback)
            or DEFAULT_MSGID_DOMAIN)


def _with_domain(message_id: str, domain: str) -> str:
    """``<left@old>`` made ``<left@domain>`` (the unique left part stays)."""
    inner = message_id.strip().removeprefix("<").removesuffix(">")
    left = inner.rsplit("@", 1)[0] if "@" in inner else ""
    if left:
        return f"<{left}@{domain}>"
    from mailcore.message import make_msgid  # mailcore is imported after the first frame

    return make_msgid(domain=domain)


def new_message_id(domain: str = "") -> str:
    """A fresh Message-ID, pinned on the draft so the preview and the sent message share it."""
    from mailcore.message import make_msgid

    return make_msgid(domain=domain or DEFAULT_MSGID_DOMAIN)


def new_date() -> str:
    """The Date header for now, as mailcore would write it; pinned on the draft like the
    Message-ID (and set again to the time of sending when the draft is sent)."""
    from email.utils import formatdate

    from mailcore.conf import settings

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

    def __post_init__(self) -> None:
        self._sync_message_id()

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name == "from_email" and "message_id" in self.__dict__:
            self._sync_message_id()

    def _sync_message_id(self) -> None:
        """The Message-ID's domain follows the From address as it is typed (its unique part
        stays): the draft holds the very ID the preview shows and the send uses."""
        domain = message_id_domain(self.from_email, self.__dict__.get("_msgid_fallback", ""))
        if domain == DEFAULT_MSGID_DOMAIN:
            return  # From cleared or half-typed: the domain it had stays
        if self.message_id and not self.message_id.rstrip(">").endswith("@" + domain):
            object.__setattr__(self, "message_id", _with_domain(self.message_id, domain))

    def use_profile_domain(self, domain_or_address: str) -> None:
        """The domain the Message-ID takes while From is empty (the profile's default From,
        else its DKIM domain): call it when the profile changes, before the preview."""
        object.__setattr__(self, "_msgid_fallback", domain_or_address or "")
        self._sync_message_id()

    def copy(self) -> Draft:
        return copy.deepcopy(self)

    def renew(self) -> None:
        """Make the next send a new message: a new Message-ID (hence new multipart
        boundaries) and Date."""
        self.message_id = new_message_id(
            message_id_domain(self.from_email, self.__dict__.get("_msgid_fallback", "")))
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


# -- what a one-line field (subject, addresses, extra headers) may hold ------------------------
# mailcore refuses HEADER_LINE_BREAKS in every header. Of those, the ones str.splitlines() splits
# on are line breaks (everything but NUL): pasted into a one-line field, a run of them becomes a
# space, as in Thunderbird. A TAB pasted there becomes a space too (it is legal in a header,
# but a one-line field has no use for it). Every other control character (C0, DEL, C1) can't go
# into a header either (nor can a lone surrogate); it is kept in the field, shown as a
# problem, and the send is refused.
# (mailcore's message module is imported when one of these is first needed, not with the
# window: see _rules)
_CONTEXT = 20  # characters of the text before a bad character, to say where it is
_RULES: tuple[str, str, re.Pattern[str]] | None = None


def _rules() -> tuple[str, str, re.Pattern[str]]:
    """(HEADER_LINE_BREAKS, LINE_BREAKS, the paste-run pattern), made once."""
    global _RULES  # noqa: PLW0603 - a cache
    if _RULES is None:
        from mailcore.message import HEADER_LINE_BREAKS

        breaks = "".join(c for c in HEADER_LINE_BREAKS if len(f"a{c}b".splitlines()) == 2)
        _RULES = (HEADER_LINE_BREAKS, breaks, re.compile("[" + re.escape(breaks + "\t") + "]+"))
    return _RULES


def __getattr__(name: str) -> str:
    if name == "LINE_BREAKS":
        return _rules()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def one_line(text: str) -> str:
    """``text`` as pasted into a one-line field: every run of line breaks and tabs becomes one
    space, and a run at the end is dropped (a copied line's own line break adds nothing).
    Other control characters are left for :func:`unsendable_problem` to show."""
    return _rules()[2].sub(lambda m: "" if m.end() == len(text) else " ", text)


def _unsendable(ch: str, header_breaks: str = "") -> bool:
    # Cs: a lone surrogate (a draft file can hold one), which no charset can write
    return ch in (header_breaks or _rules()[0]) or (
        unicodedata.category(ch) in ("Cc", "Cs") and ch != "\t")


def unsendable_at(text: str) -> list[int]:
    """Where ``text`` holds characters a mail header can't carry: the line breaks of
    ``mailcore.message.HEADER_LINE_BREAKS``, the control characters (all but TAB) and lone
    surrogates."""
    breaks = _rules()[0]
    return [i for i, ch in enumerate(text) if _unsendable(ch, breaks)]


def clean_one_line(text: str) -> str:
    """``text`` with its line breaks made spaces and its other control characters removed."""
    breaks = _rules()[0]
    return "".join(ch for ch in one_line(text) if not _unsendable(ch, breaks))


def unsendable_problem(text: str) -> str | None:
    """None if ``text`` can go into a header, else what is wrong and where, as the end of a
    sentence that starts with the field's name ("Subject holds a line break ...")."""
    bad = unsendable_at(text)
    if not bad:
        return None
    first = bad[0]
    ch = text[first]
    kind = ("a line break" if ch in _rules()[1] else "a lone surrogate"
            if unicodedata.category(ch) == "Cs" else "a control character")
    before = clean_one_line(text[:first]).rstrip()
    if len(before) > _CONTEXT:  # the last words before it, not a cut word
        tail = before[-_CONTEXT:]
        before = "\u2026" + (tail.split(" ", 1)[1] if " " in tail.strip() else tail).lstrip()
    where = f"after \u201c{before.lstrip()}\u201d" if before.strip() else "at the start"
    if len(bad) == 1:
        return f"holds {kind} (U+{ord(ch):04X}) {where}, which a mail header can't carry"
    return (f"holds {len(bad)} characters a mail header can't carry (such as line breaks and "
            f"control characters), the first {kind} (U+{ord(ch):04X}) {where}")


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

    def remove_attachments(self, draft_id: str) -> None:
        """Remove the copies of attachments made for a draft opened from an .eml file (its
        folder), when the draft goes; nothing else is ever removed (files the person
        attached stay where they are)."""
        folder = self.attachments_dir(draft_id)
        if folder.is_dir() and folder.parent == self.paths.drafts_dir / "attachments":
            shutil.rmtree(folder)

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

    def peek(self) -> dict[str, Any] | None:
        """The current draft's fields as stored (a dict, as ``Draft.to_dict`` writes them),
        without making a ``Draft`` (that needs mailcore): what the window's first frame
        shows. None if there is no draft file or it is not one."""
        data = read_json(self.path)
        if not isinstance(data, dict) or not isinstance(data.get("draft"), dict):
            return None
        return data["draft"]

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
