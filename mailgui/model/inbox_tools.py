"""What the inbox does with its messages besides showing them, worker side and without Qt:
search, a part's preview, and "Send on": the received bytes sent unchanged through a profile.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

from mailcore.backends.smtp import EmailBackend as SMTPBackend
from mailcore.wire import Serialized
from mailgui.model.inbox import InboxMessage, InboxStore
from mailgui.model.inbox_details import compute_details, part_payload
from mailgui.model.profiles import Profile
from mailgui.model.secrets import SecretStore
from mailgui.model.sending import resolve_password

__all__ = ["PART_PREVIEW_LIMIT", "PartPreview", "SearchIndex", "part_preview", "send_on"]

PART_PREVIEW_LIMIT = 32 * 1024 * 1024  # decoded bytes of a part shown in Parts; beyond: saved
TEXT_PREVIEW_CHARS = 1_000_000


class SearchIndex:
    """The words each message can be found by: subject, header and envelope addresses, text
    and HTML bodies, lower-cased; read from the stored details once per message (worker
    side; a dict assignment per message, safe across the pool's threads)."""

    def __init__(self, store: InboxStore) -> None:
        self.store = store
        self._text: dict[str, str] = {}

    def _words(self, message: InboxMessage) -> str:
        known = self._text.get(message.id)
        if known is not None:
            return known
        parts = [message.subject, message.from_header, message.to_header, message.mail_from,
                 *message.rcpt_tos]
        details = self.store.details(message.id)
        if details is None:  # stored by an older mailgui: worked out (and kept) once
            with contextlib.suppress(OSError, ValueError):
                details = compute_details(self.store.read(message.id), message.id)
                with contextlib.suppress(OSError, ValueError, TypeError):
                    self.store.save_details(details)
        if details is not None:
            parts += [value for _name, value in details.headers]
            parts += [details.text, details.html]
        text = "\n".join(parts).lower()
        self._text[message.id] = text
        return text

    def search(self, query: str, messages: Iterable[InboxMessage]) -> set[str]:
        """The ids of the messages holding every word of ``query`` (case-insensitive)."""
        words = query.lower().split()
        return {m.id for m in messages if all(w in self._words(m) for w in words)}

    def forget(self, ids: Iterable[str]) -> None:
        for msg_id in ids:
            self._text.pop(msg_id, None)


@dataclass
class PartPreview:
    kind: str  # "text", "image" or "other"
    content_type: str
    text: str = ""
    data: bytes = b""
    note: str = ""


def part_preview(store: InboxStore, msg_id: str, index: int, content_type: str,
                 charset: str, size: int) -> PartPreview:
    """What Parts shows of part ``index``: its text, its image bytes, or a word on saving it."""
    maintype = content_type.split("/", 1)[0]
    viewable = maintype in ("text", "image") or content_type == "message/rfc822"
    if not viewable:
        return PartPreview("other", content_type,
                           note=f"A {content_type} part: use \u201cSave part\u2026\u201d to "
                                "open it with another program.")
    if size > PART_PREVIEW_LIMIT:
        return PartPreview("other", content_type,
                           note="This part is too big to show here: save it to read it.")
    _name, data = part_payload(store.read(msg_id), index)
    if maintype == "image":
        return PartPreview("image", content_type, data=data)
    text = data.decode(charset or "utf-8", "replace") if _known(charset) else \
        data.decode("utf-8", "replace")
    note = ""
    if len(text) > TEXT_PREVIEW_CHARS:
        text, note = text[:TEXT_PREVIEW_CHARS], "Only the start is shown: save the part."
    return PartPreview("text", content_type, text=text, note=note)


def _known(charset: str) -> bool:
    import codecs

    try:
        codecs.lookup(charset or "utf-8")
    except LookupError:
        return False
    return True


def send_on(profile: Profile, password: str | None, secrets: SecretStore | None,
            mail_from: str, rcpt_tos: list[str], data: bytes) -> str:
    """Send ``data`` exactly as received, with the received envelope, through the SMTP profile
    ``profile`` (worker side); return the server's final reply. Raises what the SMTP backend
    raises (typed mailcore errors), or PasswordNeeded."""
    if profile.kind != "smtp":
        raise ValueError(f"{profile.name} is not an SMTP profile")
    backend = SMTPBackend(**profile.backend_kwargs(resolve_password(profile, password, secrets)))
    backend.open()
    try:
        assert backend.connection is not None
        reply = backend.connection.send_serialized(mail_from, rcpt_tos,
                                                   Serialized([data], [], "\r\n"))
    finally:
        backend.close()
    text = reply.text.decode("utf-8", "replace") if isinstance(reply.text, bytes) else reply.text
    return f"{reply.code} {text}"
