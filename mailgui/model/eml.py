"""Open an .eml file as a draft: headers, text body, HTML alternative, attachments.

Attachments are written to the draft's attachments folder, so the draft refers to files like any
other draft does.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage as StdEmailMessage
from pathlib import Path

from mailgui.model.draft import AttachmentRef, Draft, safe_filename

__all__ = ["SKIPPED_HEADERS", "draft_from_eml", "parse_message"]

# Headers that the composer owns, or that mailcore writes anew.
SKIPPED_HEADERS = {
    "from", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id", "mime-version",
    "content-type", "content-transfer-encoding", "content-disposition", "received",
    "return-path", "x-peer", "x-mailfrom", "x-rcptto", "delivered-to",
}


def parse_message(data: bytes) -> StdEmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def _unique(folder: Path, name: str) -> Path:
    candidate = folder / name
    stem, suffix = candidate.stem, candidate.suffix
    n = 2
    while candidate.exists():
        candidate = folder / f"{stem} ({n}){suffix}"
        n += 1
    return candidate


def _text(part: StdEmailMessage) -> str:
    try:
        return str(part.get_content())
    except (LookupError, ValueError, KeyError):
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", "replace")


def draft_from_eml(data: bytes, attachments_dir_for: Path | None = None,
                   draft: Draft | None = None) -> Draft:
    """A new draft with the content of the message in ``data``.

    ``attachments_dir_for`` is the folder where attachments are saved (created when needed).
    """
    msg = parse_message(data)
    draft = draft or Draft()

    def header(name: str) -> str:
        values = msg.get_all(name) or []
        return ", ".join(str(v) for v in values)

    draft.from_email = header("From")
    draft.to = header("To")
    draft.cc = header("Cc")
    draft.bcc = header("Bcc")
    draft.reply_to = header("Reply-To")
    draft.subject = str(msg.get("Subject", ""))
    draft.headers = [
        (name, str(value).replace("\r", " ").replace("\n", " "))
        for name, value in msg.items() if name.lower() not in SKIPPED_HEADERS
    ]
    body_part = msg.get_body(preferencelist=("plain",))
    html_part = msg.get_body(preferencelist=("html",))
    draft.body = _text(body_part).replace("\r\n", "\n") if body_part is not None else ""
    draft.html = _text(html_part).replace("\r\n", "\n") if html_part is not None else ""

    draft.attachments = []
    if attachments_dir_for is not None:
        for index, part in enumerate(msg.iter_attachments(), start=1):
            payload = part.get_payload(decode=True)
            if payload is None:  # an attached message: keep its bytes
                payload = part.as_bytes() if part.is_multipart() else b""
                inner = part.get_payload()
                if isinstance(inner, list) and inner:
                    payload = inner[0].as_bytes()
            name = part.get_filename() or f"attachment-{index}"
            attachments_dir_for.mkdir(parents=True, exist_ok=True)
            target = _unique(attachments_dir_for, safe_filename(name))
            target.write_bytes(payload)
            draft.attachments.append(AttachmentRef(str(target), part.get_content_type()))
    return draft
